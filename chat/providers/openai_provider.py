"""OpenAI Chat Completions (streaming, usage, tool calls) through the official SDK.
Every OpenAI-compatible server works through OPENAI_BASE_URL.

The request goes through the SDK's client (its auth, base URL, timeouts and status errors) as a
raw POST of the body built here (``client.post`` with ``cast_to=httpx.Response``, the SDK's way to
call any endpoint): the typed ``create`` would walk every parameter through its transform and
re-encode it, which costs more CPU than the rest of a streamed call. The stream's bytes are split
into lines and their chunks read as the JSON they are, not built into one pydantic object each."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypedDict, cast

import aiohttp
import anyio
import httpx2
import openai
from openai.types.chat import ChatCompletionChunk

from chat.providers.base import (
    ChatMessage,
    Finish,
    FirstByte,
    ProviderError,
    ProviderEvent,
    ProviderRequest,
    SDKProvider,
    TextDelta,
    ToolCall,
    Usage,
    provider_failure,
)
from core.json_types import JSONObject, JSONValue, compact_json


# A ``chat.completion.chunk`` as the stream sends it, the fields read here (any may be missing or null).
class _Function(TypedDict, total=False):
    name: str | None
    arguments: str | None


class _ToolCallFragment(TypedDict, total=False):
    index: int
    id: str | None
    function: _Function | None


class _Delta(TypedDict, total=False):
    content: str | None
    tool_calls: list[_ToolCallFragment] | None


class _Choice(TypedDict, total=False):
    delta: _Delta | None
    finish_reason: str | None


class _ChunkUsage(TypedDict, total=False):
    prompt_tokens: int | None
    completion_tokens: int | None


class Chunk(TypedDict, total=False):
    model: str | None
    usage: _ChunkUsage | None
    choices: list[_Choice] | None
    error: object


def _messages(request: ProviderRequest) -> list[JSONValue]:
    out: list[JSONValue] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for message in request.messages:
        out.append(_message(message))
    return out


def _message(message: ChatMessage) -> JSONObject:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def _parse_arguments(raw: str) -> JSONObject:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"value": value}


MAX_LINE_BYTES = 8 * 1024 * 1024  # a provider's line longer than this (no line break in sight) fails the call


async def byte_lines(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes]:
    """The lines of a byte stream (ended by LF, CRLF or CR; a CRLF cut between two chunks gives one
    empty line more, which a server-sent event stream ignores), the last one even without its end.
    A line is joined once, when its end arrives; one longer than MAX_LINE_BYTES is a provider failure."""
    pending: list[bytes] = []  # the start of a line not ended yet
    size = 0
    async for chunk in chunks:
        if b"\n" not in chunk and b"\r" not in chunk:
            pending.append(chunk)
            size += len(chunk)
            if size > MAX_LINE_BYTES:
                raise ProviderError(f"OpenAI-compatible provider sent a line of more than {MAX_LINE_BYTES} bytes.")
            continue
        lines = (b"".join(pending) + chunk if pending else chunk).splitlines(keepends=True)
        pending = [lines.pop()] if not lines[-1].endswith((b"\n", b"\r")) else []
        size = len(pending[0]) if pending else 0
        for line in lines:
            yield line.rstrip(b"\r\n")
    if pending:
        yield b"".join(pending)


def _malformed(payload: bytes) -> ProviderError:
    shown = payload[:200].decode("utf-8", "replace")
    return ProviderError(f"OpenAI-compatible provider sent a malformed chunk: {shown}")


async def _chunks(lines: AsyncIterator[bytes]) -> AsyncGenerator[Chunk]:
    """The ``chat.completion.chunk`` objects of a server-sent event stream, up to ``[DONE]`` (the
    rest of the body is still read, so that the connection goes back to the client's pool). An
    ``error`` object in the stream (a failure after the headers) is a provider failure."""
    done = False
    async for line in lines:
        if done or not line.startswith(b"data:"):
            continue  # blank separators, comments, event names, anything after [DONE]
        payload = line[5:].strip()
        if payload == b"[DONE]":
            done = True
            continue
        try:
            parsed: object = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _malformed(payload) from exc
        if not isinstance(parsed, dict):
            raise _malformed(payload)
        chunk = cast(Chunk, parsed)  # JSON from outside: its fields are read with .get, each checked where used
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError(f"OpenAI-compatible provider failed: {message}")
        yield chunk


# The request's options: the client's bearer auth (as the SDK's own ``create`` asks for it).
_POST_OPTIONS: openai.RequestOptions = {"security": {"bearer_auth": True}}

# What a connection can fail with mid-body that the transport does not map to httpx's errors (the
# SDK's own stream maps them to APIConnectionError; reading the lines ourselves, so do we).
READ_ERRORS = (ssl.SSLError, anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError, aiohttp.ClientError)


class OpenAIProvider(SDKProvider[openai.AsyncOpenAI]):
    name = "openai"
    settings_prefix = "OPENAI"

    def make_client(self, *, api_key: str, base_url: str | None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=self.timeout(),
            max_retries=0,  # one retry policy, ours (chat.fallbacks): no attempt hidden from billing
            http_client=self.http_client(openai),
        )

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[ProviderEvent]:
        body: JSONObject = {  # the Chat Completions request, as the JSON it is
            "model": request.model,
            "messages": _messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": request.max_output_tokens,
            "temperature": request.temperature,
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in request.tools
            ]
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": request.response_schema},
            }
        calls: dict[int, dict[str, str]] = {}
        finish, answered_by = "stop", ""
        client = self.client()
        first_byte = FirstByte()
        try:
            async with first_byte:
                response = await client.post(
                    "/chat/completions",
                    cast_to=httpx2.Response,  # the response as it arrives, its body not read yet
                    content=compact_json(body).encode(),
                    options=_POST_OPTIONS,
                    stream=True,
                    stream_cls=openai.AsyncStream[ChatCompletionChunk],
                )
                assert isinstance(response, httpx2.Response)  # what cast_to=httpx.Response answers
                try:
                    async for chunk in _chunks(first_byte.lines(byte_lines(response.aiter_bytes()))):
                        answered_by = answered_by or chunk.get("model") or ""  # each chunk names it
                        usage = chunk.get("usage")
                        if usage:
                            yield Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
                        for choice in chunk.get("choices") or ():
                            delta: _Delta = choice.get("delta") or {}
                            if content := delta.get("content"):
                                yield TextDelta(content)
                            for fragment in delta.get("tool_calls") or ():
                                slot = calls.setdefault(
                                    fragment.get("index", 0), {"id": "", "name": "", "arguments": ""}
                                )
                                if call_id := fragment.get("id"):
                                    slot["id"] = call_id
                                function: _Function = fragment.get("function") or {}
                                slot["name"] += function.get("name") or ""
                                slot["arguments"] += function.get("arguments") or ""
                            if reason := choice.get("finish_reason"):
                                finish = reason
                finally:
                    await response.aclose()  # the connection back to the pool, read or not
        except (openai.APIError, httpx2.HTTPError, *READ_ERRORS) as exc:
            if first_byte.expired():  # the deadline's cancellation, as the SDK reported it
                raise first_byte.error() from exc
            timed_out = isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException)
            connection = isinstance(exc, (openai.APIConnectionError, httpx2.TransportError, *READ_ERRORS))
            raise provider_failure(
                exc,
                vendor="OpenAI-compatible provider",
                timeout=self.timeout(),
                timed_out=timed_out,
                connection=connection,
            ) from exc
        except TimeoutError as exc:
            if first_byte.expired():
                raise first_byte.error() from exc
            raise
        for index in sorted(calls):
            slot = calls[index]
            yield ToolCall(slot["id"] or f"call_{index}", slot["name"], _parse_arguments(slot["arguments"]))
        yield Finish("tool_calls" if calls else finish, answered_by)

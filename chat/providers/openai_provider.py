"""OpenAI Chat Completions (streaming, usage, tool calls) through the official SDK.
Every OpenAI-compatible server works through OPENAI_BASE_URL."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypedDict, cast

import aiohttp
import anyio
import httpx2
import openai

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
from core.json_types import JSONObject


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


def _messages(request: ProviderRequest) -> list[JSONObject]:
    out: list[JSONObject] = []
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


async def _chunks(lines: AsyncIterator[str]) -> AsyncGenerator[Chunk]:
    """The ``chat.completion.chunk`` objects of a server-sent event stream, up to ``[DONE]`` (the
    rest of the body is still read, so that the connection goes back to the client's pool). An
    ``error`` object in the stream (a failure after the headers) is a provider failure."""
    done = False
    async for line in lines:
        if done or not line.startswith("data:"):
            continue  # blank separators, comments, event names, anything after [DONE]
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            continue
        try:
            parsed: object = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ProviderError(f"OpenAI-compatible provider sent a malformed chunk: {payload[:200]}") from exc
        if not isinstance(parsed, dict):
            raise ProviderError(f"OpenAI-compatible provider sent a malformed chunk: {payload[:200]}")
        chunk = cast(Chunk, parsed)  # JSON from outside: its fields are read with .get, each checked where used
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError(f"OpenAI-compatible provider failed: {message}")
        yield chunk


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
        kwargs: dict[str, Any] = {  # the SDK's typed parameters, built as the JSON body they become
            "model": request.model,
            "messages": _messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": request.max_output_tokens,
            "temperature": request.temperature,
        }
        if request.tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in request.tools
            ]
        if request.response_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": request.response_schema},
            }
        calls: dict[int, dict[str, str]] = {}
        finish, answered_by = "stop", ""
        client = self.client()
        first_byte = FirstByte()
        try:
            # The SDK makes the request (auth, base URL, timeouts, status errors); the chunks are
            # read as the JSON they are, not built into one pydantic object each.
            async with (
                first_byte,
                client.chat.completions.with_streaming_response.create(**kwargs) as response,
            ):
                async for chunk in _chunks(first_byte.lines(response.iter_lines())):
                    answered_by = answered_by or chunk.get("model") or ""  # each chunk names it
                    usage = chunk.get("usage")
                    if usage:
                        yield Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
                    for choice in chunk.get("choices") or ():
                        delta: _Delta = choice.get("delta") or {}
                        if content := delta.get("content"):
                            yield TextDelta(content)
                        for fragment in delta.get("tool_calls") or ():
                            slot = calls.setdefault(fragment.get("index", 0), {"id": "", "name": "", "arguments": ""})
                            if call_id := fragment.get("id"):
                                slot["id"] = call_id
                            function: _Function = fragment.get("function") or {}
                            slot["name"] += function.get("name") or ""
                            slot["arguments"] += function.get("arguments") or ""
                        if reason := choice.get("finish_reason"):
                            finish = reason
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

"""OpenAI Chat Completions (streaming, usage, tool calls) through the official SDK.
Any OpenAI-compatible server works through OPENAI_BASE_URL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from chat.providers.base import (
    ChatMessage,
    Finish,
    ProviderError,
    ProviderEvent,
    ProviderRequest,
    SDKProvider,
    TextDelta,
    ToolCall,
    Usage,
)


def _messages(request: ProviderRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for message in request.messages:
        out.append(_message(message))
    return out


def _message(message: ChatMessage) -> dict[str, Any]:
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


def _parse_arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"value": value}


class OpenAIProvider(SDKProvider):
    name = "openai"
    settings_prefix = "OPENAI"

    def make_client(self, *, api_key: str, base_url: str | None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=self.timeout_seconds, max_retries=1)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        kwargs: dict[str, Any] = {
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
        finish = "stop"
        client = self.client()
        try:
            stream = await client.chat.completions.create(**kwargs)
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        yield Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta is not None and delta.content:
                            yield TextDelta(delta.content)
                        for fragment in (delta.tool_calls or []) if delta is not None else []:
                            slot = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                            if fragment.id:
                                slot["id"] = fragment.id
                            if fragment.function is not None:
                                slot["name"] += fragment.function.name or ""
                                slot["arguments"] += fragment.function.arguments or ""
                        if choice.finish_reason:
                            finish = choice.finish_reason
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise ProviderError(f"OpenAI-compatible provider failed: {exc}") from exc
        for index in sorted(calls):
            slot = calls[index]
            yield ToolCall(slot["id"] or f"call_{index}", slot["name"], _parse_arguments(slot["arguments"]))
        yield Finish("tool_calls" if calls else finish)

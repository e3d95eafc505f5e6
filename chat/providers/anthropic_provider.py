"""Anthropic Messages API (streaming, usage, tool use) through the official SDK.

The SDK (2.x) takes no sampling temperature: the model's default applies."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import anthropic
import httpx2

from chat.providers.base import (
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
from core.json_types import JSONObject, JSONValue

SCHEMA_TOOL = "respond"
STOP_REASONS = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length", "stop_sequence": "stop"}


def _messages(request: ProviderRequest) -> list[JSONObject]:
    out: list[JSONObject] = []
    for message in request.messages:
        if message.role == "tool":
            block: JSONObject = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
                "is_error": message.is_error,
            }
            previous = out[-1]["content"] if out and out[-1]["role"] == "user" else None
            if isinstance(previous, list):
                previous.append(block)  # consecutive results go in one user turn
            else:
                out.append({"role": "user", "content": [block]})
        elif message.role == "assistant" and message.tool_calls:
            content: list[JSONValue] = []
            if message.content:
                content.append({"type": "text", "text": message.content})
            content += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in message.tool_calls
            ]
            out.append({"role": "assistant", "content": content})
        else:
            out.append({"role": message.role, "content": message.content})
    return out


class AnthropicProvider(SDKProvider[anthropic.AsyncAnthropic]):
    name = "anthropic"
    settings_prefix = "ANTHROPIC"

    def make_client(self, *, api_key: str, base_url: str | None) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=self.timeout(),
            max_retries=0,  # one retry policy, ours (chat.fallbacks): no attempt hidden from billing
            http_client=self.http_client(anthropic),
            # the call's span is ours (core.tracing: never content); the SDK's own, which can record the
            # request and answer (ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE), is never made
            open_telemetry=False,
        )

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[ProviderEvent]:
        kwargs: dict[str, Any] = {  # the SDK's typed parameters, built as the JSON body they become
            "model": request.model,
            "max_tokens": request.max_output_tokens,
            "messages": _messages(request),
            "stream": True,
        }
        if request.system:
            kwargs["system"] = request.system
        tools = [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools]
        if request.response_schema is not None:
            tools = [{"name": SCHEMA_TOOL, "description": "Give the answer.", "input_schema": request.response_schema}]
            kwargs["tool_choice"] = {"type": "tool", "name": SCHEMA_TOOL}
        if tools:
            kwargs["tools"] = tools
        first_byte = FirstByte()
        try:
            async with first_byte:
                async for event in self._events(request, kwargs, first_byte):
                    yield event
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            if first_byte.expired():  # the deadline's cancellation, as the SDK reported it
                raise first_byte.error() from exc
            timed_out = isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException)
            connection = isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError)
            failure = provider_failure(
                exc, vendor="Anthropic provider", timeout=self.timeout(), timed_out=timed_out, connection=connection
            )
            raise failure from exc
        except TimeoutError as exc:
            if first_byte.expired():
                raise first_byte.error() from exc
            raise
        except json.JSONDecodeError as exc:
            raise ProviderError("Anthropic sent malformed tool input.") from exc

    async def _events(
        self,
        request: ProviderRequest,
        kwargs: dict[str, Any],  # the SDK's typed parameters, as ``stream`` built them
        first_byte: FirstByte,
    ) -> AsyncGenerator[ProviderEvent]:
        """The SDK's stream events as the provider's events (the SDK makes the request)."""
        input_tokens = output_tokens = 0
        blocks: dict[int, dict[str, str]] = {}
        finish, answered_by = "stop", ""
        stream = await self.client().messages.create(**kwargs)
        async for event in first_byte.lines(stream):
            kind = event.type
            if kind == "message_start":
                answered_by = event.message.model or ""
                input_tokens = event.message.usage.input_tokens or 0
                output_tokens = event.message.usage.output_tokens or 0
            elif kind == "content_block_start" and event.content_block.type == "tool_use":
                blocks[event.index] = {"id": event.content_block.id, "name": event.content_block.name, "json": ""}
            elif kind == "content_block_delta":
                if event.delta.type == "text_delta":
                    yield TextDelta(event.delta.text)
                elif event.delta.type == "input_json_delta" and event.index in blocks:
                    blocks[event.index]["json"] += event.delta.partial_json
            elif kind == "content_block_stop" and event.index in blocks:
                block = blocks.pop(event.index)
                arguments = json.loads(block["json"] or "{}")
                if request.response_schema is not None:
                    yield TextDelta(json.dumps(arguments))
                else:
                    finish = "tool_calls"
                    yield ToolCall(block["id"], block["name"], arguments)
            elif kind == "message_delta":
                if event.usage is not None and event.usage.output_tokens is not None:
                    output_tokens = event.usage.output_tokens
                if event.delta.stop_reason and finish != "tool_calls":
                    finish = STOP_REASONS.get(event.delta.stop_reason, event.delta.stop_reason)
        yield Usage(input_tokens, output_tokens)
        yield Finish(finish, answered_by)

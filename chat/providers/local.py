"""The offline ``local`` model: a deterministic provider for development and demos.

It needs no key and no network. It streams a useful (if modest) answer that shows what
the specialist was given, reports token usage, calls an offered tool when the message
names it, and fills a JSON schema. It is labelled as such in every answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncGenerator

from chat.providers.base import (
    ChatMessage,
    Finish,
    ProviderEvent,
    ProviderRequest,
    TextDelta,
    ToolCall,
    Usage,
    request_tokens_estimate,
    tokens_estimate,
)
from core.json_types import JSONObject, JSONValue

LABEL = "[local offline model]"
PAIR = re.compile(r"(\w+)\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^\s,;]+)")


def _last_user_text(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def _tool_mentioned(text: str, name: str) -> bool:
    lowered = text.lower()
    short = name.rsplit("__", maxsplit=1)[-1].lower()
    return bool(re.search(rf"(?<![\w-]){re.escape(short)}(?![\w-])", lowered)) or name.lower() in lowered


def _object(value: JSONValue) -> JSONObject:
    """A schema's part that should be an object (an empty one when it is not)."""
    return value if isinstance(value, dict) else {}


def _array(value: JSONValue) -> list[JSONValue]:
    return value if isinstance(value, list) else []


def _number(value: JSONValue) -> float:
    return float(value) if isinstance(value, int | float | str) else 0.0


def _coerce(value: str, schema: JSONObject) -> JSONValue:
    value = value.strip("\"'")
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            return value.lower() in {"true", "yes", "1"}
    except ValueError:
        return value
    return value


def _tool_arguments(text: str, schema: JSONObject) -> JSONObject:
    properties = _object(schema.get("properties", {}))
    given = dict(PAIR.findall(text))
    arguments: JSONObject = {}
    for key, prop in properties.items():
        if key in given:
            arguments[key] = _coerce(given[key], _object(prop))
        elif key in _array(schema.get("required", [])):
            arguments[key] = _default_for(key, _object(prop), text)
    return arguments


def _default_for(key: str, prop: JSONObject, text: str) -> JSONValue:
    if "default" in prop:
        return prop["default"]
    if enum := _array(prop.get("enum")):
        return enum[0]
    kind = prop.get("type")
    if kind == "integer":
        return int(_number(prop.get("minimum", 0)))
    if kind == "number":
        return _number(prop.get("minimum", 0))
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return fill_schema(prop, text)
    return text[:200]


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'-]+", text)


def _title_case(words: list[str], limit: int) -> str:
    return " ".join(word.capitalize() for word in words[:limit])


def fill_schema(schema: JSONObject, brief: str) -> JSONObject:
    """A deterministic object that satisfies ``schema``, derived from the brief."""
    words = [w for w in _words(brief) if len(w) > 3] or ["Assistant"]
    result: JSONObject = {}
    for key, value in _object(schema.get("properties", {})).items():
        prop = _object(value)
        lowered = key.lower()
        kind = prop.get("type")
        if kind == "array" and (options := _array(_object(prop.get("items", {})).get("enum"))):
            result[key] = [o for o in options if str(o).lower() in brief.lower()]
        elif "default" in prop:
            result[key] = prop["default"]
        elif enum := _array(prop.get("enum")):
            result[key] = enum[0]
        elif kind == "string" and lowered == "name":
            digest = hashlib.sha256(brief.encode()).hexdigest()
            result[key] = f"{_title_case(words, 1)} {['Ada', 'Alan', 'Grace', 'Edsger'][int(digest, 16) % 4]}"
        elif kind == "string" and lowered == "title":
            result[key] = _title_case(words, 3)
        elif kind == "string" and lowered == "instructions":
            result[key] = (
                f"You are a specialist hired for this job: {brief.strip()} "
                "Work carefully, say what you assumed, and ask when something is unclear."
            )
        elif kind == "string":
            result[key] = brief.strip()[:280] or key
        else:
            result[key] = _default_for(key, prop, brief)
    return result


def _answer(request: ProviderRequest) -> str:
    last = request.messages[-1] if request.messages else ChatMessage(role="user")
    if last.role == "tool":
        results = [m for m in request.messages if m.role == "tool" and m.tool_call_id]
        lines = [f"{LABEL} I used the tool and here is what came back:"]
        for message in results[-4:]:
            status = "failed" if message.is_error else "returned"
            lines.append(f"- it {status}: {message.content[:500]}")
        return "\n".join(lines)
    question = _last_user_text(request.messages).strip()
    documents = [m.content for m in request.messages if m.role == "user" and m.content.startswith("<documents>")]
    context_files = re.findall(r'^<document name="([^"]*)">$', "\n".join(documents), re.MULTILINE)
    parts = [f"{LABEL} You asked: “{question[:300]}”."]
    words = _words(question)
    if words:
        parts.append(f"The key words I see are: {', '.join(sorted({w.lower() for w in words})[:8])}.")
    if context_files:
        parts.append(f"I have {len(context_files)} document(s) in context: {', '.join(context_files[:5])}.")
    history = sum(1 for m in request.messages[:-1] if m.role in {"user", "assistant"}) - len(documents)
    if history:
        parts.append(f"This conversation has {history} earlier message(s).")
    parts.append("Connect a real model (OpenAI or Anthropic) for substantive answers.")
    return " ".join(parts)


class LocalProvider:
    name = "local"

    def configured(self) -> bool:
        return True

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[ProviderEvent]:
        input_tokens = request_tokens_estimate(request)
        last = request.messages[-1] if request.messages else None
        if request.response_schema is not None:
            text = json.dumps(fill_schema(request.response_schema, _last_user_text(request.messages)))
            yield TextDelta(text)
            yield Usage(input_tokens, tokens_estimate(text))
            yield Finish("stop", request.model)
            return
        if request.tools and last is not None and last.role == "user":
            calls = [
                ToolCall(
                    id=f"call_{hashlib.sha256((tool.name + last.content).encode()).hexdigest()[:12]}",
                    name=tool.name,
                    arguments=_tool_arguments(last.content, tool.input_schema),
                )
                for tool in request.tools
                if _tool_mentioned(last.content, tool.name)
            ]
            if calls:
                for call in calls:
                    yield call
                yield Usage(input_tokens, sum(tokens_estimate(json.dumps(c.arguments)) + 4 for c in calls))
                yield Finish("tool_calls", request.model)
                return
        answer = _answer(request)
        limit = request.max_output_tokens * 4
        finish = "stop"
        if len(answer) > limit:
            answer, finish = answer[:limit], "length"
        for piece in re.findall(r"\S+\s*", answer):
            yield TextDelta(piece)
        yield Usage(input_tokens, tokens_estimate(answer))
        yield Finish(finish, request.model)

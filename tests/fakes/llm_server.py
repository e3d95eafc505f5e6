"""A local server that speaks the real OpenAI Chat Completions and Anthropic Messages streaming
wire formats, driven by scripted scenarios. The official SDKs talk to it over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


@dataclass
class Scenario:
    chunks: list[str] = field(default_factory=lambda: ["Hello", " from", " the", " fake."])
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"id", "name", "arguments": dict}
    usage: tuple[int, int] = (1000, 500)
    status: int = 200  # an HTTP error before the stream
    drop_after: int | None = None  # close the connection after this many chunks
    error_after: int | None = None  # an in-stream error object after this many chunks (OpenAI)
    delay: float = 0.0  # seconds between chunks
    hang_after: int | None = None  # send nothing more (the connection stays open) after this many chunks
    finish: str | None = None
    retry_after: str | None = None  # the Retry-After header of an HTTP error (``status``)
    stall: float = 0.0  # seconds before anything is sent (no first byte: not even the headers)
    model: str | None = None  # the model the answer names (else the one asked for)


class FakeLLM:
    def __init__(self) -> None:
        self.scenarios: deque[Scenario] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.closed_early = threading.Event()

    def script(self, *scenarios: Scenario) -> None:
        self.scenarios.extend(scenarios)

    def next(self) -> Scenario:
        return self.scenarios.popleft() if self.scenarios else Scenario()

    def reset(self) -> None:
        self.scenarios.clear()
        self.requests.clear()
        self.headers.clear()
        self.closed_early.clear()


def _sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


class Dropped(Exception):
    pass


def build_app(fake: FakeLLM) -> Starlette:
    async def record(request: Request) -> dict[str, Any]:
        body = await request.json()
        fake.requests.append(body)
        fake.headers.append(dict(request.headers))
        return body

    async def before_answering(scenario: Scenario) -> None:
        if scenario.stall:
            await asyncio.sleep(scenario.stall)

    def error_headers(scenario: Scenario) -> dict[str, str]:
        return {"retry-after": scenario.retry_after} if scenario.retry_after is not None else {}

    async def openai_chat(request: Request) -> Any:
        body = await record(request)
        scenario = fake.next()
        await before_answering(scenario)
        if scenario.status != 200:
            return JSONResponse(
                {"error": {"message": "scripted failure", "type": "server_error"}},
                scenario.status,
                headers=error_headers(scenario),
            )
        model = scenario.model or body.get("model", "m")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
            )

        async def stream() -> Any:
            try:
                yield chunk({"role": "assistant", "content": ""})
                for i, text in enumerate(scenario.chunks):
                    if scenario.drop_after is not None and i >= scenario.drop_after:
                        raise Dropped
                    if scenario.hang_after is not None and i >= scenario.hang_after:
                        await asyncio.sleep(3600)
                    if scenario.error_after is not None and i >= scenario.error_after:
                        yield _sse({"error": {"message": "scripted overload", "type": "server_error"}})
                        return
                    await asyncio.sleep(scenario.delay)
                    yield chunk({"content": text})
                for index, call in enumerate(scenario.tool_calls):
                    arguments = json.dumps(call["arguments"])
                    head = {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": ""},
                    }
                    yield chunk({"tool_calls": [head]})
                    middle = len(arguments) // 2
                    for part in (arguments[:middle], arguments[middle:]):
                        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                finish = scenario.finish or ("tool_calls" if scenario.tool_calls else "stop")
                yield chunk({}, finish)
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield _sse(
                        {
                            "id": "chatcmpl-fake",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": model,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": scenario.usage[0],
                                "completion_tokens": scenario.usage[1],
                                "total_tokens": sum(scenario.usage),
                            },
                        }
                    )
                yield b"data: [DONE]\n\n"
            except asyncio.CancelledError:
                fake.closed_early.set()
                raise

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def anthropic_messages(request: Request) -> Any:
        body = await record(request)
        scenario = fake.next()
        await before_answering(scenario)
        if scenario.status != 200:
            return JSONResponse(
                {"type": "error", "error": {"type": "api_error", "message": "scripted failure"}},
                scenario.status,
                headers=error_headers(scenario),
            )

        async def stream() -> Any:
            try:
                yield _sse(
                    {
                        "type": "message_start",
                        "message": {
                            "id": "msg_fake",
                            "type": "message",
                            "role": "assistant",
                            "content": [],
                            "model": scenario.model or body.get("model"),
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {"input_tokens": scenario.usage[0], "output_tokens": 1},
                        },
                    },
                    "message_start",
                )
                yield _sse({"type": "ping"}, "ping")
                index = 0
                if scenario.chunks:
                    yield _sse(
                        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                        "content_block_start",
                    )
                    for i, text in enumerate(scenario.chunks):
                        if scenario.drop_after is not None and i >= scenario.drop_after:
                            raise Dropped
                        if scenario.hang_after is not None and i >= scenario.hang_after:
                            await asyncio.sleep(3600)
                        await asyncio.sleep(scenario.delay)
                        yield _sse(
                            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
                            "content_block_delta",
                        )
                    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
                    index = 1
                for offset, call in enumerate(scenario.tool_calls):
                    i = index + offset
                    yield _sse(
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}},
                        },
                        "content_block_start",
                    )
                    arguments = json.dumps(call["arguments"])
                    middle = len(arguments) // 2
                    for part in (arguments[:middle], arguments[middle:]):
                        yield _sse(
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": part},
                            },
                            "content_block_delta",
                        )
                    yield _sse({"type": "content_block_stop", "index": i}, "content_block_stop")
                stop = scenario.finish or ("tool_use" if scenario.tool_calls else "end_turn")
                yield _sse(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": scenario.usage[1]},
                    },
                    "message_delta",
                )
                yield _sse({"type": "message_stop"}, "message_stop")
            except asyncio.CancelledError:
                fake.closed_early.set()
                raise

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", openai_chat, methods=["POST"]),
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
        ]
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadedServer:
    """A uvicorn server in a background thread (its own event loop)."""

    def __init__(self, app: Any, *, lifespan: str = "off") -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

"""Providers through the official SDKs against a local server speaking their wire formats."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from chat.providers import get_provider
from chat.providers.base import (
    ChatMessage,
    Finish,
    ProviderError,
    ProviderRequest,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from tests.fakes.llm_server import Scenario

ADD = ToolSpec(
    "add", "Add two numbers", {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}
)


def request(model="m", **kwargs) -> ProviderRequest:
    return ProviderRequest(
        model=model,
        system="Be brief.",
        messages=[ChatMessage(role="user", content="Hi")],
        max_output_tokens=100,
        **kwargs,
    )


def collect(provider: str, req: ProviderRequest) -> list:
    async def run():
        return [event async for event in get_provider(provider).stream(req)]

    return async_to_sync(run)()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_text_deltas_usage_and_finish(fake_llm, provider):
    fake_llm.script(Scenario(chunks=["Hel", "lo"], usage=(11, 7), model="m-2024-12-01"))
    events = collect(provider, request())
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    assert [e for e in events if isinstance(e, Usage)] == [Usage(11, 7)]
    assert events[-1] == Finish("stop", "m-2024-12-01")  # and the model that answered, as it named itself
    sent = fake_llm.requests[-1]
    assert sent["stream"] is True
    if provider == "openai":
        assert sent["stream_options"] == {"include_usage": True}
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert fake_llm.headers[-1]["authorization"] == "Bearer sk-test"
    else:
        assert sent["system"] == "Be brief."
        assert sent["max_tokens"] == 100
        assert "anthropic-version" in fake_llm.headers[-1]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_tool_call_fragments_are_joined(fake_llm, provider):
    fake_llm.script(Scenario(chunks=[], tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 40}}]))
    events = collect(provider, request(tools=[ADD]))
    assert [e for e in events if isinstance(e, ToolCall)] == [ToolCall("call_1", "add", {"a": 2, "b": 40})]
    assert events[-1] == Finish("tool_calls", "m")
    sent = fake_llm.requests[-1]
    if provider == "openai":
        assert sent["tools"][0]["function"]["name"] == "add"
    else:
        assert sent["tools"][0]["input_schema"]["properties"]["a"] == {"type": "number"}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_tool_results_go_back_in_the_providers_shape(fake_llm, provider):
    req = request(tools=[ADD])
    call = ToolCall("call_9", "add", {"a": 1, "b": 2})
    req.messages += [
        ChatMessage(role="assistant", content="", tool_calls=[call]),
        ChatMessage(role="tool", content="3", tool_call_id="call_9"),
    ]
    collect(provider, req)
    sent = fake_llm.requests[-1]["messages"]
    if provider == "openai":
        assert sent[-2]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1, "b": 2}'}
        assert sent[-1] == {"role": "tool", "tool_call_id": "call_9", "content": "3"}
    else:
        assert sent[-2]["content"][0] == {"type": "tool_use", "id": "call_9", "name": "add", "input": {"a": 1, "b": 2}}
        assert sent[-1]["content"][0]["type"] == "tool_result"
        assert sent[-1]["content"][0]["tool_use_id"] == "call_9"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [400, 401, 500, 529])
def test_http_errors_become_provider_errors(fake_llm, provider, status):
    fake_llm.script(Scenario(status=status), Scenario(status=status))  # the SDK may retry once
    with pytest.raises(ProviderError) as info:
        collect(provider, request())
    assert info.value.code == "llm_unavailable"
    assert info.value.status == 502


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_dropped_stream_is_a_provider_error(fake_llm, provider):
    fake_llm.script(Scenario(chunks=["a", "b", "c", "d"], drop_after=2))
    with pytest.raises(ProviderError):
        collect(provider, request())


def test_unreachable_provider(settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    with pytest.raises(ProviderError):
        collect("openai", request())


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_provider_that_hangs_up_is_not_called_idle(settings, provider):
    """A server that closes the connection without answering: a provider failure that says so,
    not the idle-timeout message (the aiohttp transport reports it as a connect timeout)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def hang_up() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                peer, _ = listener.accept()
            except TimeoutError:
                continue
            peer.recv(65536)
            peer.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    prefix = provider.upper()
    setattr(
        settings, f"{prefix}_BASE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}" + "/v1" * (prefix == "OPENAI")
    )
    setattr(settings, f"{prefix}_API_KEY", "k")
    try:
        with pytest.raises(ProviderError) as info:
            collect(provider, request())
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert "sent nothing" not in str(info.value.detail)
    assert "failed" in str(info.value.detail)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_unconfigured_provider_refuses_without_connecting(settings, provider, monkeypatch):
    """No key and no base URL: the SDK would call the vendor's public endpoint; refuse first."""
    import socket

    for prefix in ("OPENAI", "ANTHROPIC"):
        setattr(settings, f"{prefix}_API_KEY", "")
        setattr(settings, f"{prefix}_BASE_URL", "")

    def no_network(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(ProviderError, match="not configured"):
        collect(provider, request())


def test_json_schema_mode(fake_llm):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    fake_llm.script(Scenario(chunks=['{"name":', ' "Ada"}']))
    events = collect("openai", request(response_schema=schema))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == '{"name": "Ada"}'
    assert fake_llm.requests[-1]["response_format"]["json_schema"]["schema"] == schema
    fake_llm.script(Scenario(chunks=[], tool_calls=[{"id": "t", "name": "respond", "arguments": {"name": "Bo"}}]))
    events = collect("anthropic", request(response_schema=schema))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == '{"name": "Bo"}'
    assert fake_llm.requests[-1]["tool_choice"] == {"type": "tool", "name": "respond"}


def test_local_provider_is_deterministic_and_reports_usage():
    req = request(model="local")
    first, second = collect("local", req), collect("local", req)
    assert first == second
    text = "".join(e.text for e in first if isinstance(e, TextDelta))
    assert text.startswith("[local offline model]")
    usage = next(e for e in first if isinstance(e, Usage))
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0


def test_local_provider_calls_a_named_tool_then_answers_with_the_result():
    req = request(model="local", tools=[ADD])
    req.messages = [ChatMessage(role="user", content="please add a=2 b=3")]
    events = collect("local", req)
    call = next(e for e in events if isinstance(e, ToolCall))
    assert (call.name, call.arguments) == ("add", {"a": 2.0, "b": 3.0})
    req.messages += [
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", content="5", tool_call_id=call.id),
    ]
    answer = "".join(e.text for e in collect("local", req) if isinstance(e, TextDelta))
    assert "5" in answer


def test_local_provider_fills_a_schema():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "temperature": {"type": "number", "default": 0.3},
            "toolIds": {"type": "array", "items": {"type": "string", "enum": ["x1", "y2"]}},
        },
    }
    req = request(model="local", response_schema=schema)
    req.messages = [ChatMessage(role="user", content="A bookkeeper who uses y2 daily")]
    import json

    events = collect("local", req)
    draft = json.loads("".join(e.text for e in events if isinstance(e, TextDelta)))
    assert draft["temperature"] == 0.3
    assert draft["toolIds"] == ["y2"]
    assert draft["name"]


def test_an_error_inside_an_openai_stream_is_a_provider_failure_after_what_came_before(fake_llm):
    """OpenAI-compatible servers report a failure after the headers as an ``error`` object in the
    stream: the text before it has arrived, then the call fails."""
    fake_llm.script(Scenario(chunks=["one", " two", " three"], error_after=2))
    events: list = []

    async def run() -> None:
        async for event in get_provider("openai").stream(request()):
            events.append(event)

    with pytest.raises(ProviderError, match="scripted overload"):
        async_to_sync(run)()
    assert events == [TextDelta("one"), TextDelta(" two")]


def test_a_byte_stream_is_split_into_lines_wherever_its_chunks_are_cut():
    """The OpenAI stream's lines are split from its bytes: LF, CRLF and CR end a line, a line cut
    between chunks (or inside a multi-byte character) is joined, the last one counts without its end."""
    from chat.providers.openai_provider import byte_lines

    async def lines(*chunks: bytes) -> list[bytes]:
        async def source():
            for chunk in chunks:
                yield chunk

        return [line async for line in byte_lines(source())]

    text = 'data: {"a":"é"}\r\n\r\ndata: [DONE]\n'.encode()
    whole = async_to_sync(lines)(text)
    assert [line for line in whole if line] == [b'data: {"a":"\xc3\xa9"}', b"data: [DONE]"]
    for cut in range(1, len(text)):  # every place a chunk may end, the CRLF's and the "é"'s middles included
        assert [line for line in async_to_sync(lines)(text[:cut], text[cut:]) if line] == [
            line for line in whole if line
        ]
    assert async_to_sync(lines)(b"a\rb\n", b"c") == [b"a", b"b", b"c"]


def test_a_chunk_that_is_not_json_nor_utf8_is_a_provider_failure(fake_llm):
    from chat.providers.openai_provider import _chunks

    async def read(raw: bytes) -> None:
        async def source():
            yield raw

        async for _ in _chunks(source()):
            pass

    with pytest.raises(ProviderError, match="malformed chunk: \\{not json"):
        async_to_sync(read)(b"data: {not json")
    with pytest.raises(ProviderError, match="malformed chunk"):
        async_to_sync(read)(b'data: {"a": "\xff\xfe"}')
    with pytest.raises(ProviderError, match="malformed chunk: \\[1\\]"):
        async_to_sync(read)(b"data: [1]")


def test_a_line_without_end_past_its_limit_is_a_provider_failure(monkeypatch):
    """A provider that floods one line (no line break ever) fails the call at the limit instead of
    filling the server's memory."""
    from chat.providers import openai_provider

    monkeypatch.setattr(openai_provider, "MAX_LINE_BYTES", 1000)
    read: list[int] = []

    async def run() -> None:
        async def flood():
            while True:
                read.append(1)
                yield b"x" * 100

        async for _ in openai_provider.byte_lines(flood()):
            pass

    with pytest.raises(ProviderError, match="more than 1000 bytes"):
        async_to_sync(run)()
    assert len(read) == 11  # the limit, then one chunk more

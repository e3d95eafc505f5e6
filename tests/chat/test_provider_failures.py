"""How a provider call fails, as the retry policy (``chat.fallbacks``) needs to know it: through the
official openai and anthropic SDKs against the wire fakes, with the SDKs' own retries off (one
request per call: no attempt hidden from billing)."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync

from chat import fallbacks
from chat.providers import get_provider
from chat.providers.base import (
    CONNECTION_ERROR,
    HTTP,
    TIMEOUT,
    ChatMessage,
    ProviderError,
    ProviderRequest,
    TextDelta,
    retry_after_seconds,
)
from tests.fakes.llm_server import Scenario

PROVIDERS = ["openai", "anthropic"]


def request() -> ProviderRequest:
    return ProviderRequest(
        model="m", system="Be brief.", messages=[ChatMessage(role="user", content="Hi")], max_output_tokens=50
    )


def failure(provider: str) -> tuple[ProviderError, list]:
    events: list = []

    async def run() -> None:
        async for event in get_provider(provider).stream(request()):
            events.append(event)

    with pytest.raises(ProviderError) as info:
        async_to_sync(run)()
    return info.value, events


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_a_retryable_status_is_one_request_with_its_status_and_retry_after(fake_llm, provider, status):
    fake_llm.script(Scenario(status=status, retry_after="3"), Scenario(chunks=["the SDK's retry"]))
    error, _ = failure(provider)
    assert (error.kind, error.http_status, error.retry_after) == (HTTP, status, 3.0)
    assert error.reason == f"http_{status}"
    assert fallbacks.retry_reason(error=error) == f"http_{status}"
    assert len(fake_llm.requests) == 1  # the SDK did not retry on its own


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_statuses_are_not_retried(fake_llm, provider, status):
    fake_llm.script(Scenario(status=status))
    error, _ = failure(provider)
    assert (error.kind, error.http_status, error.retry_after) == (HTTP, status, None)
    assert fallbacks.retry_reason(error=error) is None
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_first_byte_in_time_is_a_timeout(fake_llm, settings, provider):
    settings.LLM_FIRST_BYTE_TIMEOUT = 0.3
    fake_llm.script(Scenario(stall=3))  # not even the headers
    error, events = failure(provider)
    assert (error.kind, error.reason, events) == (TIMEOUT, "timeout", [])
    assert "LLM_FIRST_BYTE_TIMEOUT" in error.detail
    for _ in range(50):  # the fake reads the body on its own loop: on a loaded machine after the 0.3 s
        if fake_llm.requests:
            break
        time.sleep(0.1)
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_first_byte_deadline_ends_with_the_first_byte(fake_llm, settings, provider):
    """A slow answer that has started is not cut by LLM_FIRST_BYTE_TIMEOUT (LLM_IDLE_TIMEOUT governs it)."""
    # the deadline leaves a loaded machine time for the call's start (the SDK's first request looks up
    # the platform in a thread); the answer takes longer than it in all
    settings.LLM_FIRST_BYTE_TIMEOUT = 1.0
    fake_llm.script(Scenario(chunks=["slow", " but", " steady"], delay=0.6))

    async def run() -> list:
        return [event async for event in get_provider(provider).stream(request())]

    events = async_to_sync(run)()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "slow but steady"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_provider_that_goes_quiet_before_its_output_is_a_timeout(fake_llm, settings, provider):
    """Headers and the stream's opening, then nothing: the idle timeout, still before any output."""
    settings.LLM_IDLE_TIMEOUT = 0.5
    fake_llm.script(Scenario(chunks=["never"], hang_after=0))
    error, events = failure(provider)
    assert (error.kind, events) == (TIMEOUT, [])


def test_a_refused_connection_is_a_connection_error(settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    settings.OPENAI_API_KEY = "k"
    error, _ = failure("openai")
    assert (error.kind, error.reason) == (CONNECTION_ERROR, "connection_error")
    assert fallbacks.retry_reason(error=error) == "connection_error"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_connection_dropped_before_the_output_is_a_connection_error(fake_llm, provider):
    fake_llm.script(Scenario(chunks=["a", "b"], drop_after=0))
    error, events = failure(provider)
    assert (error.kind, events) == (CONNECTION_ERROR, [])


def test_an_error_inside_the_stream_is_not_retried(fake_llm):
    fake_llm.script(Scenario(chunks=["a"], error_after=0))
    error, _ = failure("openai")
    assert error.reason == "provider_error"
    assert fallbacks.retry_reason(error=error) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: now
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after(headers, seconds):
    assert retry_after_seconds(headers) == seconds


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [(None, fallbacks.BACKOFF_SECONDS), (0.0, 0.0), (5.0, 5.0), (5.1, None), (60.0, None)],
)
def test_retry_after_up_to_five_seconds_is_honoured_and_longer_skips_the_retry(retry_after, pause):
    error = ProviderError("x", kind=HTTP, http_status=429, retry_after=retry_after)
    assert fallbacks.retry_pause(error=error) == pause

"""The one small interface every LLM provider implements."""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType, TracebackType
from typing import Protocol, cast

import aiohttp
import httpx2
from django.conf import settings

from core.errors import DomainError
from core.json_types import JSONObject


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: JSONObject


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # "stop" | "tool_calls" | "length" | …
    model: str = ""  # the model that answered, as the provider names it ("": it did not say)


ProviderEvent = TextDelta | ToolCall | Usage | Finish


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    input_schema: JSONObject


@dataclass(slots=True)
class ChatMessage:
    """A provider-neutral message: user/assistant text, assistant tool calls, tool results."""

    role: str  # "user" | "assistant" | "tool"
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    is_error: bool = False


@dataclass(slots=True)
class ProviderRequest:
    model: str
    system: str
    messages: list[ChatMessage]
    max_output_tokens: int
    temperature: float = 0.7
    tools: list[ToolSpec] = field(default_factory=list)
    response_schema: JSONObject | None = None  # ask for one JSON object of this schema


# How a provider call failed (``ProviderError.kind``): what a retry policy decides on.
TIMEOUT = "timeout"  # nothing within LLM_FIRST_BYTE_TIMEOUT, or LLM_IDLE_TIMEOUT between two bytes
CONNECTION_ERROR = "connection_error"  # no connection, or the provider closed it
HTTP = "http"  # the provider answered an error status (``http_status``)
RESPONSE = "response"  # a malformed stream, an error inside it, a provider not configured


class ProviderError(DomainError):
    """The provider failed (network, 4xx/5xx, a dropped stream): 502 ``llm_unavailable``. It says
    how (``kind``), the provider's status (``http_status``) and its ``Retry-After`` in seconds
    (``retry_after``), for the caller's retry policy: a provider itself never retries."""

    status = 502
    code = "llm_unavailable"
    default_detail = "The model provider failed."

    def __init__(
        self,
        detail: str | None = None,
        *,
        kind: str = RESPONSE,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.http_status = http_status
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        """``timeout``, ``connection_error``, ``http_<status>`` or ``provider_error``."""
        if self.kind == HTTP:
            return f"http_{self.http_status}"
        return self.kind if self.kind in (TIMEOUT, CONNECTION_ERROR) else "provider_error"


class Provider(Protocol):
    name: str

    def configured(self) -> bool: ...

    def stream(self, request: ProviderRequest) -> AsyncGenerator[ProviderEvent]: ...


_loop_cache: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, object]] = weakref.WeakKeyDictionary()


def loop_cached[T](key: Hashable, factory: Callable[[], T]) -> T:
    """An object (an SDK client) kept for the running event loop's lifetime; a key is always given
    the same factory (its provider's, with its configuration)."""
    cache = _loop_cache.setdefault(asyncio.get_running_loop(), {})
    if key not in cache:
        cache[key] = factory()
    return cast(T, cache[key])  # what this key's factory made


class SDKProvider[Client]:
    """A provider backed by an official SDK client, configured from ``<PREFIX>_API_KEY`` and
    ``<PREFIX>_BASE_URL``. One client (and connection pool) per event loop and configuration:
    building one costs more than a short streamed turn, and a client cannot move between loops."""

    name = ""
    settings_prefix = ""

    @staticmethod
    def timeout() -> httpx2.Timeout:
        """Connecting, then at most ``LLM_IDLE_TIMEOUT`` seconds without a byte from the provider
        (before its first token or between two): a provider that hangs fails the call."""
        return httpx2.Timeout(settings.LLM_IDLE_TIMEOUT, connect=settings.LLM_CONNECT_TIMEOUT)

    def _config(self) -> tuple[str, str]:
        return getattr(settings, f"{self.settings_prefix}_API_KEY"), getattr(
            settings, f"{self.settings_prefix}_BASE_URL"
        )

    def configured(self) -> bool:
        return any(self._config())

    def make_client(self, *, api_key: str, base_url: str | None) -> Client:
        raise NotImplementedError

    def http_client(self, sdk: ModuleType) -> httpx2.AsyncClient:
        """The SDK's own aiohttp transport (``DefaultAioHttpClient``): the same requests, timeouts
        and errors as its default httpx transport, for about a third less CPU per streamed call."""
        client: httpx2.AsyncClient = sdk.DefaultAioHttpClient(timeout=self.timeout())
        return client

    def client(self) -> Client:
        """The SDK client; a provider with neither key nor base URL is refused here, before any
        connection is attempted (the SDK would otherwise call the vendor's public endpoint)."""
        api_key, base_url = self._config()
        if not (api_key or base_url):
            raise ProviderError(
                f"The {self.name} provider is not configured on this server "
                f"(set {self.settings_prefix}_API_KEY or {self.settings_prefix}_BASE_URL)."
            )
        timeout = self.timeout()
        return loop_cached(
            (self.name, api_key, base_url, timeout.read, timeout.connect),
            lambda: self.make_client(api_key=api_key or "not-needed", base_url=base_url or None),
        )


class FirstByte:
    """The deadline of a call's first byte: the provider's answer must start (its headers and the
    first line or event of its stream) within LLM_FIRST_BYTE_TIMEOUT seconds of the call. Entered
    around the whole call; ``lines`` disarms it at the first line, before anything is yielded."""

    def __init__(self) -> None:
        self.seconds: float = settings.LLM_FIRST_BYTE_TIMEOUT
        self.deadline = asyncio.timeout(self.seconds)

    async def __aenter__(self) -> FirstByte:
        await self.deadline.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.deadline.__aexit__(kind, exc, traceback)  # raises TimeoutError if the deadline passed

    def arrived(self) -> None:
        if self.deadline.when() is not None and not self.deadline.expired():
            self.deadline.reschedule(None)

    async def lines[T](self, source: AsyncIterator[T]) -> AsyncGenerator[T]:
        async for item in source:
            self.arrived()
            yield item

    def expired(self) -> bool:
        return self.deadline.expired()

    def error(self) -> ProviderError:
        return ProviderError(
            f"The provider sent nothing within {self.seconds:g} s (LLM_FIRST_BYTE_TIMEOUT); the call was given up.",
            kind=TIMEOUT,
        )


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """A provider's ``Retry-After`` (seconds or an HTTP date; ``retry-after-ms`` first), in seconds."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    try:
        if raw_ms is not None:
            return max(float(raw_ms) / 1000, 0.0)
    except ValueError:
        pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def idle_message(timeout: httpx2.Timeout) -> str:
    return f"The provider sent nothing for {timeout.read:g} s (LLM_IDLE_TIMEOUT); the call was given up."


def _connection_failed(exc: BaseException) -> bool:
    """The SDKs' aiohttp transport reports a connection refused, or one the provider closed, as a
    (connect) timeout; the cause chain tells them apart."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ServerDisconnectedError | aiohttp.ClientConnectorError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def provider_failure(
    exc: BaseException, *, vendor: str, timeout: httpx2.Timeout, timed_out: bool, connection: bool
) -> ProviderError:
    """What a failed provider call tells the caller: the idle timeout, a connection that failed
    (``connection``: the SDK's connection error or the transport's), the provider's error status
    with its Retry-After, or another failure."""
    failed = _connection_failed(exc)
    if timed_out and not failed:
        return ProviderError(idle_message(timeout), kind=TIMEOUT)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        response = getattr(exc, "response", None)
        retry_after = retry_after_seconds(getattr(response, "headers", None))
        return ProviderError(f"{vendor} failed: {exc}", kind=HTTP, http_status=status, retry_after=retry_after)
    kind = CONNECTION_ERROR if connection or failed else RESPONSE
    return ProviderError(f"{vendor} failed: {exc}", kind=kind)


# Two estimates of a text's tokens, for different uses. Byte-level BPE tokenizers (OpenAI's,
# Anthropic's) never make a token of less than one UTF-8 byte, so a text's UTF-8 length bounds its
# tokens from above, whatever the script; characters ÷ 4 holds for English only (CJK text is about
# one token a character, emoji two or more).
MESSAGE_OVERHEAD_TOKENS = 8  # a message's role and separators, as the chat formats add them
REQUEST_OVERHEAD_TOKENS = 16  # the reply's priming and the format's framing
# What a provider adds, unseen, to a request that offers tools (Anthropic's tool-use system prompt is
# some 300-350 input tokens): in the upper bound only, so that a hold covers it.
TOOLS_OVERHEAD_TOKENS = 512


def tokens_upper_bound(text: str) -> int:
    """At most this many tokens, for any byte-level BPE tokenizer: what a hold must assume."""
    return len(text.encode("utf-8", "surrogatepass"))


def tokens_estimate(text: str) -> int:
    """The likely number of tokens (never above ``tokens_upper_bound``): about 4 ASCII characters a
    token, 2 characters of the 2-byte scripts (accented Latin, Greek, Cyrillic, Hebrew, Arabic), one
    for each 3-byte character (CJK, Thai, Indic) and 2 for each 4-byte one (emoji, rare CJK). For
    trimming the history and billing a call whose usage the provider never reported."""
    if not text:
        return 0
    if text.isascii():
        return math.ceil(len(text) / 4)
    ascii_chars = len(text.encode("ascii", "ignore"))
    utf8 = len(text.encode("utf-8", "surrogatepass"))
    wide = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)  # 4-byte characters
    rest = len(text) - ascii_chars - wide  # 2- and 3-byte characters
    three = (utf8 - ascii_chars - 4 * wide) - 2 * rest
    two = rest - three
    return math.ceil(ascii_chars / 4 + two / 2) + three + 2 * wide


def _request_tokens(request: ProviderRequest, count: Callable[[str], int]) -> int:
    total = count(request.system) + REQUEST_OVERHEAD_TOKENS
    for message in request.messages:
        total += count(message.content) + count(message.tool_call_id) + MESSAGE_OVERHEAD_TOKENS
        for call in message.tool_calls:
            total += count(call.id) + count(call.name) + count(json.dumps(call.arguments)) + MESSAGE_OVERHEAD_TOKENS
    for tool in request.tools:
        total += count(tool_text(tool)) + MESSAGE_OVERHEAD_TOKENS
    if request.response_schema:
        total += count(json.dumps(request.response_schema))
    return total


def tool_text(tool: ToolSpec) -> str:
    """What a tool's definition puts before the model: its name, description and input schema."""
    return f"{tool.name}\n{tool.description}\n{json.dumps(tool.input_schema)}"


def request_tokens_upper_bound(request: ProviderRequest) -> int:
    """At most this many input tokens: what a call's hold assumes, so that a call settled at its
    reported usage never costs more than was held; with tools, what the provider adds for them too."""
    return _request_tokens(request, tokens_upper_bound) + (TOOLS_OVERHEAD_TOKENS if request.tools else 0)


def request_tokens_estimate(request: ProviderRequest) -> int:
    """The likely input tokens: what a call cut off before the provider reported its usage is billed."""
    return _request_tokens(request, tokens_estimate)

"""Throttles whose rates are read from settings.THROTTLE_RATES at request time."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from core.errors import RateLimitedError

logger = logging.getLogger(__name__)


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/min' → (10, 60). Accepts s/sec/second, m/min/minute, h/hour, d/day."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0].lower()]
    return int(count), seconds


# A cache that cannot be reached (Redis down): throttles fail open and say so in the log, so that
# HTTP and SSE keep working without them. After a failure the cache is left alone for a few
# seconds (one warning, no connect timeout per request). A wrong password or a bad command is no
# outage: it is not caught.
CACHE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
CACHE_RETRY_SECONDS = 5.0


class _CacheBreaker:
    def __init__(self) -> None:
        self.open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self, what: str, exc: BaseException) -> None:
        self.open_until = time.monotonic() + CACHE_RETRY_SECONDS
        logger.warning("%s not applied for %s s, the cache is unavailable: %s", what, CACHE_RETRY_SECONDS, exc)


breaker = _CacheBreaker()


def _window_hits(keys: list[str], window: int, now: float) -> list[tuple[int, int]]:
    """Counts one hit on each key: (hits in the current fixed window, hits in the one before), in
    one cache round trip on Redis (``core.cache.RedisCache.count_hits``)."""
    index = int(now // window)
    counting = getattr(cache, "count_hits", None)
    if counting is not None:
        return counting(keys, index, window)
    found = []
    for key in keys:  # any other cache (the in-process one of a single process)
        current, previous = f"{key}:{index}", f"{key}:{index - 1}"
        cache.add(current, 0, 2 * window)
        found.append((cache.incr(current), cache.get(previous, 0)))
    return found


def over_limit(rates: dict[str, str], *, what: str) -> float | None:
    """A sliding-window limit on each key of ``rates`` (key → rate): the current window's hits plus
    the last window's, weighted by how much of it the sliding window still covers. None when every
    key is within its rate, else the seconds to wait. Keys with the same window are counted in one
    round trip. Refused hits count too, so a client that keeps trying stays refused. Fails open
    (logged) while the cache is unavailable."""
    if breaker.is_open():
        return None
    by_window: dict[int, list[tuple[str, int]]] = {}
    for key, rate in rates.items():
        limit, window = parse_rate(rate)
        by_window.setdefault(window, []).append((key, limit))
    now = time.time()
    for window, limits in by_window.items():
        try:
            counts = _window_hits([key for key, _ in limits], window, now)
        except CACHE_ERRORS as exc:
            breaker.trip(what, exc)
            return None
        elapsed = now % window
        for (current, previous), (_, limit) in zip(counts, limits, strict=True):
            if previous * (1 - elapsed / window) + current > limit:
                return window - elapsed
    return None


class ScopedThrottle(BaseThrottle):
    """Counts requests per authenticated user (or client IP) within a scope (DRF's throttle
    interface, on ``over_limit``)."""

    scope = ""

    def __init__(self) -> None:
        self._wait: float | None = None

    def get_rate(self) -> str:
        return settings.THROTTLE_RATES[self.scope]

    def get_ident(self, request: Request) -> str:
        """The client address (``client_address``), never DRF's reading of ``X-Forwarded-For``."""
        return client_address(request)

    def get_cache_key(self, request: Request, view: APIView | None) -> str:
        user = getattr(request, "user", None)
        ident = str(user.pk) if user is not None and user.is_authenticated else self.get_ident(request)
        return f"throttle_{self.scope}_{ident}"

    def allow_request(self, request: Request, view: APIView | None) -> bool:
        self._wait = over_limit({self.get_cache_key(request, view): self.get_rate()}, what=f"Throttle {self.scope!r}")
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait

    def check(self, request: Request, view: APIView | None = None) -> None:
        """For views outside DRF's request cycle: 429 with ``Retry-After`` once the rate is spent."""
        if not self.allow_request(request, view):
            raise RateLimitedError(math.ceil(self.wait() or 1))


class RegisterThrottle(ScopedThrottle):
    scope = "register"

    def get_cache_key(self, request: Request, view: APIView | None) -> str:
        return f"throttle_register_{client_address(request)}"


class UploadThrottle(ScopedThrottle):
    scope = "upload"


class MCPSyncThrottle(ScopedThrottle):
    """MCP syncs per organization (``THROTTLE_MCP_SYNC``), whoever asks: each one waits on an outside
    server. The org is the view's ``org_id`` path argument. The view calls ``check`` itself, once the
    org, the caller's role and the connection are known: a request refused before that (a non-member,
    a member, an unknown connection) spends nothing of the org's rate."""

    scope = "mcp_sync"

    def get_cache_key(self, request: Request, view: APIView | None) -> str:
        org_id = (getattr(view, "kwargs", None) or {}).get("org_id")
        return f"throttle_{self.scope}_{org_id}" if org_id else super().get_cache_key(request, view)


class MCPWriteThrottle(MCPSyncThrottle):
    """MCP connections created or updated per organization (``THROTTLE_MCP_WRITE``): each one looks an
    outside host name up. Checked by the view after the org and role checks, as ``MCPSyncThrottle``."""

    scope = "mcp_write"


def chat_wait(*, user_id: object, org_id: object) -> float | None:
    """Chat sends (every road: SSE, async send, WebSocket frames), limited per user
    (``THROTTLE_CHAT``) and per org (``THROTTLE_CHAT_ORG``), in one round trip: None, or the
    seconds to wait."""
    rates = settings.THROTTLE_RATES
    return over_limit(
        {f"throttle_chat_{user_id}": rates["chat"], f"throttle_chat_org_{org_id}": rates["chat_org"]},
        what="Throttle 'chat'",
    )


def websocket_wait(*, user_id: object) -> float | None:
    """WebSocket connections opened by one user (``THROTTLE_WEBSOCKET``): None, or the seconds to
    wait. A client that reconnects in a loop is closed 4429 before its session is even read."""
    return over_limit(
        {f"throttle_websocket_{user_id}": settings.THROTTLE_RATES["websocket"]}, what="Throttle 'websocket'"
    )


def check_chat(*, user_id: object, org_id: object) -> None:
    """429 with ``Retry-After`` once the caller or their org has spent its chat rate."""
    wait = chat_wait(user_id=user_id, org_id=org_id)
    if wait is not None:
        raise RateLimitedError(math.ceil(wait or 1))


class FailureLimiter:
    """Counts failures (e.g. wrong passwords) per key within the scope's window.

    Only failures count, so a user who logs in correctly is never slowed down, while
    guessing against one email or from one client is stopped with 429 + Retry-After. A failure is
    one atomic increment (Redis ``INCR``), so parallel guesses are each counted; the window slides
    as ``over_limit``'s does (this fixed window's failures plus the last one's, weighted).
    """

    def __init__(self, scope: str, *, multiplier: int = 1) -> None:
        self.scope = scope
        limit, self.window = parse_rate(settings.THROTTLE_RATES[scope])
        self.limit = limit * multiplier

    def _key(self, ident: str) -> str:
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        return f"failures_{self.scope}_{digest}"

    def failures(self, ident: str) -> float:
        """The failures that count now for ``ident`` (read only); 0 while the cache is unavailable."""
        if breaker.is_open():
            return 0.0
        now = time.time()
        index = int(now // self.window)
        key = self._key(ident)
        current, previous = f"{key}:{index}", f"{key}:{index - 1}"
        try:
            found = cache.get_many([current, previous])
        except CACHE_ERRORS as exc:
            breaker.trip(f"Limit {self.scope!r}", exc)
            return 0.0
        elapsed = now % self.window
        return int(found.get(previous) or 0) * (1 - elapsed / self.window) + int(found.get(current) or 0)

    def check(self, *idents: str) -> None:
        for ident in idents:
            if math.ceil(self.failures(ident)) >= self.limit:  # a fraction of a failure is one
                raise RateLimitedError(wait=int(self.window - time.time() % self.window) + 1)

    def record_failure(self, *idents: str) -> None:
        if breaker.is_open() or not idents:
            return
        try:
            _window_hits([self._key(ident) for ident in idents], self.window, time.time())
        except CACHE_ERRORS as exc:
            breaker.trip(f"Limit {self.scope!r}", exc)


# One client (an office behind one address) may fail for several people: it gets more room
# than one email does.
CLIENT_MULTIPLIER = 5


def client_address(request: HttpRequest | Request) -> str:
    """The client's address, for every per-client limit (login, password reset, invitations,
    registration): the TCP peer (the server never rewrites it from headers), or, with
    ``TRUSTED_PROXY_COUNT`` = N proxies in front, the ``X-Forwarded-For`` entry the outermost
    trusted proxy wrote: the N-th from the end (with 1, the last). Entries further left are the
    client's own words and are never read, nor is any other header (``X-Real-IP``, ``Forwarded``).
    A header with fewer entries than trusted proxies, or an entry that is not an IP address, leaves
    the peer (a client cannot reset its limits by sending headers)."""
    meta = request.META
    peer = str(meta.get("REMOTE_ADDR") or "unknown")
    trusted = int(settings.TRUSTED_PROXY_COUNT)
    if trusted <= 0:
        return peer
    entries = [entry.strip() for entry in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    entries = [entry for entry in entries if entry]
    if len(entries) < trusted:
        return peer
    try:
        return str(ipaddress.ip_address(entries[-trusted]))
    except ValueError:
        return peer


@dataclass(frozen=True)
class Limits:
    """Several failure limits checked and counted together (per email and per client address)."""

    pairs: tuple[tuple[FailureLimiter, str], ...]

    def check(self) -> None:
        """429 (``RateLimitedError``) once any of them is spent."""
        for limiter, ident in self.pairs:
            limiter.check(ident)

    def record_failure(self) -> None:
        for limiter, ident in self.pairs:
            limiter.record_failure(ident)


def login_limits(request: HttpRequest | Request, *, email: str, kind: str = "") -> Limits:
    """Password guesses (the API's login, the admin's, and ``kind`` flows that send or check
    secrets): ``THROTTLE_LOGIN`` failures for one email, ``CLIENT_MULTIPLIER`` times as many from one
    client address."""
    prefix = f"{kind}-" if kind else ""
    pairs: list[tuple[FailureLimiter, str]] = []
    if email:
        pairs.append((FailureLimiter("login"), f"{prefix}email:{email.strip().lower()}"))
    pairs.append((FailureLimiter("login", multiplier=CLIENT_MULTIPLIER), f"{prefix}ip:{client_address(request)}"))
    return Limits(tuple(pairs))

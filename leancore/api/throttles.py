"""Throttles whose rates are read from settings.THROTTLE_RATES at request time."""

from __future__ import annotations

import hashlib
import logging
import math
import time

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from leancore.api.errors import RateLimitedError

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


class ScopedThrottle(SimpleRateThrottle):
    """Counts requests per authenticated user (or client IP) within a scope."""

    scope = ""

    def __init__(self) -> None:  # do not read DRF's class-level rates
        self.rate = self.get_rate()
        self.num_requests, self.duration = parse_rate(self.rate)

    def get_rate(self) -> str:
        return settings.THROTTLE_RATES[self.scope]

    def allow_request(self, request: Request, view: APIView | None) -> bool:
        if breaker.is_open():
            return True
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as exc:
            breaker.trip(f"Throttle {self.scope!r}", exc)
            return True

    def get_cache_key(self, request: Request, view: APIView) -> str:
        ident = str(request.user.pk) if request.user and request.user.is_authenticated else self.get_ident(request)
        return f"throttle_{self.scope}_{ident}"

    def check(self, request: Request, view: APIView | None = None) -> None:
        """For views outside DRF's request cycle: 429 with ``Retry-After`` once the rate is spent."""
        if not self.allow_request(request, view):
            raise RateLimitedError(math.ceil(self.wait() or 1))


class RegisterThrottle(ScopedThrottle):
    scope = "register"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return f"throttle_register_{self.get_ident(request)}"


class ChatThrottle(ScopedThrottle):
    scope = "chat"


class UploadThrottle(ScopedThrottle):
    scope = "upload"


class FailureLimiter:
    """Counts failures (e.g. wrong passwords) per key within the scope's window.

    Only failures count, so a user who logs in correctly is never slowed down, while
    guessing against one email or from one client is stopped with 429 + Retry-After.
    """

    def __init__(self, scope: str, *, multiplier: int = 1) -> None:
        self.scope = scope
        limit, self.window = parse_rate(settings.THROTTLE_RATES[scope])
        self.limit = limit * multiplier

    def _key(self, ident: str) -> str:
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        return f"failures_{self.scope}_{digest}"

    def _history(self, key: str, now: float) -> list[float]:
        if breaker.is_open():
            return []
        try:
            return [t for t in cache.get(key, []) if t > now - self.window]
        except CACHE_ERRORS as exc:
            breaker.trip(f"Limit {self.scope!r}", exc)
            return []

    def check(self, *idents: str) -> None:
        now = time.time()
        for ident in idents:
            history = self._history(self._key(ident), now)
            if len(history) >= self.limit:
                raise RateLimitedError(wait=int(history[0] + self.window - now) + 1)

    def record_failure(self, *idents: str) -> None:
        now = time.time()
        for ident in idents:
            key = self._key(ident)
            history = self._history(key, now)
            history.append(now)
            if breaker.is_open():
                continue
            try:
                cache.set(key, history, self.window)
            except CACHE_ERRORS as exc:
                breaker.trip(f"Limit {self.scope!r}", exc)


# One client (an office behind one address) may fail for several people: it gets more room
# than one email does.
CLIENT_MULTIPLIER = 5


def client_ip(request: Request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"

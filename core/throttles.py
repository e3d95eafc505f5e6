"""Throttles whose rates are read from settings.THROTTLE_RATES at request time."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
        counted: list[tuple[int, int]] = counting(keys, index, window)
        return counted
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
    """Counts requests per authenticated user or org API key (or client IP) within a scope (DRF's throttle
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
        key = getattr(user, "api_key", None)  # an org API key's caller (``orgs.principal.KeyCaller``)
        if key is not None:
            ident = f"key:{key.pk}"
        elif user is not None and user.is_authenticated:
            ident = str(user.pk)
        else:
            ident = self.get_ident(request)
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


class InviteThrottle(ScopedThrottle):
    """Invitations sent (each one e-mails an outside address in the org's name): ``THROTTLE_INVITE``
    per organization (the view's ``org``) and as many per client (``client_address``), re-sends
    included. The view calls ``check`` itself, after the org and role checks and a valid body."""

    scope = "invite"

    def allow_request(self, request: Request, view: APIView | None) -> bool:
        rate = self.get_rate()
        rates = {f"throttle_invite_client_{client_address(request)}": rate}
        org = getattr(view, "org", None)
        if org is not None:
            rates[f"throttle_invite_org_{org.pk}"] = rate
        self._wait = over_limit(rates, what="Throttle 'invite'")
        return self._wait is None


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


def chat_wait(*, caller_id: object, org_id: object) -> float | None:
    """Chat sends (every road: SSE, async send, WebSocket frames), limited per caller (a user, or
    an org API key: ``THROTTLE_CHAT``) and per org (``THROTTLE_CHAT_ORG``), in one round trip:
    None, or the seconds to wait."""
    rates = settings.THROTTLE_RATES
    return over_limit(
        {f"throttle_chat_{caller_id}": rates["chat"], f"throttle_chat_org_{org_id}": rates["chat_org"]},
        what="Throttle 'chat'",
    )


def websocket_wait(*, caller_id: object) -> float | None:
    """WebSocket connections opened by one caller, a user or an org API key
    (``THROTTLE_WEBSOCKET``): None, or the seconds to wait. A client that reconnects in a loop is
    closed 4429 before its session is even read."""
    return over_limit(
        {f"throttle_websocket_{caller_id}": settings.THROTTLE_RATES["websocket"]}, what="Throttle 'websocket'"
    )


def check_chat(*, caller_id: object, org_id: object) -> None:
    """429 with ``Retry-After`` once the caller or their org has spent its chat rate."""
    wait = chat_wait(caller_id=caller_id, org_id=org_id)
    if wait is not None:
        raise RateLimitedError(math.ceil(wait or 1))


class FailureLimiter:
    """Wrong guesses (passwords, tokens) about one ident within the scope's window, on the sliding
    window of ``over_limit`` (this fixed window's count plus the last one's, weighted). Counted by
    ``Limits``: an attempt is counted before it is evaluated and forgiven when it was right."""

    def __init__(self, scope: str, *, multiplier: int = 1) -> None:
        self.scope = scope
        limit, self.window = parse_rate(settings.THROTTLE_RATES[scope])
        self.limit = limit * multiplier

    def key(self, ident: str) -> str:
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        return f"failures_{self.scope}_{digest}"

    def failures(self, ident: str) -> float:
        """The failures that count now for ``ident`` (read only); 0 while the cache is unavailable."""
        if breaker.is_open():
            return 0.0
        now = time.time()
        index = int(now // self.window)
        key = self.key(ident)
        current, previous = f"{key}:{index}", f"{key}:{index - 1}"
        try:
            found = cache.get_many([current, previous])
        except CACHE_ERRORS as exc:
            breaker.trip(f"Limit {self.scope!r}", exc)
            return 0.0
        elapsed = now % self.window
        return int(found.get(previous) or 0) * (1 - elapsed / self.window) + int(found.get(current) or 0)


# One client (an office behind one address) may fail for several people: it gets more room
# than one email does.
CLIENT_MULTIPLIER = 5
# Every address of an IPv6 /64 is one client: a single subscriber is routed a whole /64 (or more).
IPV6_CLIENT_PREFIX = 64


def _client_key(address: str) -> str | None:
    """One client's key for an address: an IPv4 address as it is (an IPv4-mapped IPv6 one too), an
    IPv6 address as its /64. None for what is not an IP address."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


def client_address(request: HttpRequest | Request) -> str:
    """The client, for every per-client limit (login, password reset, invitations, registration):
    the TCP peer (the server never rewrites it from headers), or, with ``TRUSTED_PROXY_COUNT`` = N
    proxies in front, the ``X-Forwarded-For`` entry the outermost trusted proxy wrote: the N-th from
    the end (with 1, the last). Entries further left are the client's own words and are never read,
    nor is any other header (``X-Real-IP``, ``Forwarded``). A header with fewer entries than trusted
    proxies, or an entry that is not an IP address, leaves the peer (a client cannot reset its limits
    by sending headers). An IPv6 client is its /64 (``2001:db8:1:2::/64``): whoever holds one holds
    all its addresses; an IPv4-mapped IPv6 address is its IPv4 address."""
    meta = request.META
    peer = str(meta.get("REMOTE_ADDR") or "unknown")
    peer = _client_key(peer) or peer
    trusted = int(settings.TRUSTED_PROXY_COUNT)
    if trusted <= 0:
        return peer
    entries = [entry.strip() for entry in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    entries = [entry for entry in entries if entry]
    if len(entries) < trusted:
        return peer
    return _client_key(entries[-trusted]) or peer


class Limits:
    """Failure limits counted together (e.g. per email and per client address), one attempt at a
    time: ``count`` adds the attempt to every limit first, in one atomic increment each (one round
    trip), and refuses it when any count is then over its limit; ``forgive`` takes it back. So
    parallel guesses each take their own place in the count and at most the limit of them are ever
    evaluated; the rest are refused (429) before anything is checked."""

    def __init__(self, pairs: tuple[tuple[FailureLimiter, str], ...]) -> None:
        self.pairs = pairs
        self._counted: list[str] = []  # the cache keys this attempt incremented

    def count(self) -> None:
        """Counts this attempt; 429 (``RateLimitedError``, not counted) once any limit is spent.
        Fails open (logged) while the cache is unavailable."""
        if breaker.is_open():
            return
        now = time.time()
        by_window: dict[int, list[tuple[FailureLimiter, str]]] = {}
        for limiter, ident in self.pairs:
            by_window.setdefault(limiter.window, []).append((limiter, ident))
        wait = 0.0
        for window, pairs in by_window.items():
            keys = [limiter.key(ident) for limiter, ident in pairs]
            try:
                counts = _window_hits(keys, window, now)
            except CACHE_ERRORS as exc:
                breaker.trip("Failure limits", exc)
                return
            index = int(now // window)
            self._counted += [f"{key}:{index}" for key in keys]
            elapsed = now % window
            for (current, previous), (limiter, _) in zip(counts, pairs, strict=True):
                if math.ceil(previous * (1 - elapsed / window) + current) > limiter.limit:  # a fraction is one
                    wait = max(wait, window - elapsed)
        if wait:
            self.forgive()
            raise RateLimitedError(math.ceil(wait))

    def forgive(self) -> None:
        """Takes the counted attempt back (it was right, or it was refused)."""
        counted, self._counted = self._counted, []
        for key in counted:
            try:
                cache.decr(key)
            except ValueError:  # expired meanwhile: nothing left to take back
                pass
            except CACHE_ERRORS as exc:
                breaker.trip("Failure limits", exc)
                return

    @contextmanager
    def attempt(self, wrong: type[Exception] | Callable[[Exception], bool]) -> Iterator[None]:
        """Counts the attempt the block makes (429 before the block once a limit is spent); it stays
        counted only when the block raises what ``wrong`` names (an exception class, or a test of the
        exception): a right guess, or an error that is no guess, is forgiven."""
        self.count()
        try:
            yield
        except Exception as exc:
            if not (isinstance(exc, wrong) if isinstance(wrong, type) else wrong(exc)):
                self.forgive()
            raise
        self.forgive()


def guess_limits(request: HttpRequest | Request, *, subject: str = "", kind: str = "") -> Limits:
    """Secrets guessed (passwords, one-time tokens) in the ``kind`` flow: ``THROTTLE_LOGIN`` wrong
    guesses about one ``subject`` (an email, a user), ``CLIENT_MULTIPLIER`` times as many from one
    client (``client_address``)."""
    prefix = f"{kind}-" if kind else ""
    pairs: list[tuple[FailureLimiter, str]] = []
    if subject:
        pairs.append((FailureLimiter("login"), f"{prefix}{subject}"))
    pairs.append((FailureLimiter("login", multiplier=CLIENT_MULTIPLIER), f"{prefix}ip:{client_address(request)}"))
    return Limits(tuple(pairs))


def login_limits(request: HttpRequest | Request, *, email: str, kind: str = "") -> Limits:
    """Password guesses about one email (the API's login and the admin's share them), and ``kind``
    flows that send secrets to an email (password reset)."""
    subject = f"email:{email.strip().lower()}" if email else ""
    return guess_limits(request, subject=subject, kind=kind)

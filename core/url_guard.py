"""SSRF guard of every outbound URL an organization gives (MCP servers, webhooks): it must not reach
private, loopback, link-local or metadata addresses, except the exact origins of
``MCP_ALLOWED_PRIVATE_URLS`` (e.g. the demo MCP server on loopback). ``MCP_ALLOW_PRIVATE_NETWORKS``
lets everything through (development). Checked when the URL is saved and again before each connection,
which then goes only to the addresses just checked (``PinnedTransport``)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

import httpcore2
import httpx2
from django.conf import settings

from core.errors import DomainError, ServiceUnavailableError

RESOLVE_TIMEOUT_SECONDS = 3.0
# A lookup runs in a thread of its own small pool, and is given up after RESOLVE_TIMEOUT_SECONDS. A
# resolver that never answers keeps that thread until the system's resolver gives up: so lookups are
# never queued behind stuck ones; once every thread is busy, the next lookup fails at once (503).
# One org (the ``key`` of a lookup) holds at most LOOKUPS_PER_ORG of them at once: an org that names
# hosts under a silent name server is refused (503) itself, and leaves the others to every other org.
LOOKUP_THREADS = 8
LOOKUPS_PER_ORG = 2
_resolver = ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="mcp-dns")
_lookup_slots = threading.BoundedSemaphore(LOOKUP_THREADS)
_per_key_lock = threading.Lock()
_per_key: dict[object, int] = {}


class ResolverBusyError(ServiceUnavailableError):
    """Every lookup thread is waiting on a name server: refuse now rather than queue."""

    def __init__(self) -> None:
        super().__init__("Too many host names are being looked up right now. Try again shortly.")


class UrlNotAllowedError(DomainError):
    status = 400
    code = "url_not_allowed"
    default_detail = "This URL is not allowed."

    def __init__(self, detail: str) -> None:
        super().__init__(detail, extra={"errors": {"url": [detail]}})


# Deprecated IPv6 site-local addresses (RFC 3879), still routed inside some networks; Python's
# ``is_private`` does not count them.
_IPV6_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def _blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or str(ip) in {"169.254.169.254", "fd00:ec2::254", "100.100.100.200"}
        or ip in ipaddress.ip_network("100.64.0.0/10")
        or ip in _IPV6_SITE_LOCAL
    )


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _take_slot(key: object) -> None:
    """One lookup thread for ``key`` (None: no org's), or ``ResolverBusyError`` at once."""
    with _per_key_lock:
        if key is not None and _per_key.get(key, 0) >= LOOKUPS_PER_ORG:
            raise ResolverBusyError
        if not _lookup_slots.acquire(blocking=False):
            raise ResolverBusyError
        if key is not None:
            _per_key[key] = _per_key.get(key, 0) + 1


def _give_slot(key: object) -> None:
    with _per_key_lock:
        if key is not None:
            left = _per_key.pop(key, 1) - 1
            if left > 0:
                _per_key[key] = left
        _lookup_slots.release()


def _lookup(host: str, port: int, key: object) -> list[str]:
    try:
        return _resolve(host, port)
    finally:
        _give_slot(key)  # only when the lookup is really over, however long it took


def resolve(host: str, port: int, *, key: object = None) -> list[str]:
    """The addresses of ``host``, within RESOLVE_TIMEOUT_SECONDS (``OSError`` or ``TimeoutError``
    otherwise); ``ResolverBusyError`` at once while every lookup thread is taken, or while ``key``
    (the org that asks) already holds LOOKUPS_PER_ORG of them."""
    _take_slot(key)
    try:
        future = _resolver.submit(_lookup, host, port, key)
    except BaseException:
        _give_slot(key)
        raise
    try:
        return future.result(timeout=RESOLVE_TIMEOUT_SECONDS)
    except FutureTimeout as exc:
        raise TimeoutError(f"{host} did not resolve in time.") from exc


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` with the port spelled out (None for a URL without a host or with a bad port)."""
    parts = urlsplit(url.strip())
    if not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return None
    host = parts.hostname.lower()
    return f"{parts.scheme.lower()}://{f'[{host}]' if ':' in host else host}:{port}"


def allow_listed(url: str) -> bool:
    """Whether ``url``'s origin is exactly one of ``MCP_ALLOWED_PRIVATE_URLS`` (same scheme, host and port)."""
    origin = origin_of(url)
    allowed = {origin_of(item) for item in getattr(settings, "MCP_ALLOWED_PRIVATE_URLS", ())}
    return origin is not None and origin in allowed


def check_url(url: str, *, org_id: object = None) -> list[str] | None:
    """Raises UrlNotAllowedError unless ``url`` is http(s) and every address it resolves to is public
    (or MCP_ALLOW_PRIVATE_NETWORKS is set). Called on save and again before every connect. Returns
    the addresses it checked, which are the only ones a connection may then go to (``PinnedTransport``:
    a name that resolves to something else a moment later, DNS rebinding, changes nothing); None
    when private networks are allowed. An origin of ``MCP_ALLOWED_PRIVATE_URLS`` may be private or
    loopback (and is still pinned, to its port too); nothing else is. ``org_id`` is the org whose
    URL this is: its lookups share LOOKUPS_PER_ORG threads (``resolve``)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UrlNotAllowedError("Only http and https URLs with a host are allowed.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range or not a number
        raise UrlNotAllowedError("The URL's port is not a valid port number.") from exc
    if settings.MCP_ALLOW_PRIVATE_NETWORKS:
        return None
    host = parts.hostname
    allowed = allow_listed(url)
    name = host.lower()
    if not allowed and (name in {"localhost", "metadata.google.internal", "metadata"} or name.endswith(".localhost")):
        raise UrlNotAllowedError(f"{host} is a local or metadata address.")
    try:
        addresses = resolve(host, port, key=org_id)
    except OSError as exc:  # TimeoutError included
        raise UrlNotAllowedError(f"{host} does not resolve.") from exc
    if not addresses:
        raise UrlNotAllowedError(f"{host} does not resolve.")
    blocked = [address for address in addresses if _blocked(address)]
    if blocked and not allowed:
        raise UrlNotAllowedError(f"{host} resolves to a private, loopback, link-local or metadata address.")
    return addresses


class _PinnedBackend(httpcore2.AnyIOBackend):
    """Connects a checked host to the addresses it was checked at, never to a fresh lookup; any other
    host (or, when ``port`` is given, any other port) is refused. TLS still names (and verifies) the
    host itself."""

    def __init__(self, host: str, addresses: list[str], port: int | None = None) -> None:
        super().__init__()
        self.host = host.lower()
        self.addresses = addresses
        self.port = port

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        if host.lower() != self.host:
            raise httpcore2.ConnectError(f"{host} is not the checked MCP host.")
        if self.port is not None and port != self.port:
            raise httpcore2.ConnectError(f"{host}:{port} is not the checked MCP port.")
        failure: Exception | None = None
        for address in self.addresses:
            try:
                return await super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:
                failure = exc
        raise failure or httpcore2.ConnectError(f"{host}: no address to connect to.")


class PinnedTransport(httpx2.AsyncHTTPTransport):
    """An HTTP transport whose connections go only to the addresses ``check_url`` approved."""

    def __init__(self, url: str, addresses: list[str]) -> None:
        super().__init__(trust_env=False)  # no proxy from the environment: it would resolve the name itself
        # httpcore takes its network backend at construction; httpx builds the pool for us
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._pool._network_backend = _PinnedBackend(parts.hostname or "", addresses, port)

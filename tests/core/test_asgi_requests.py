"""Requests through the ASGI application itself (``leancore.asgi.application``)."""

from __future__ import annotations

import asyncio

from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from leancore import asgi

SIGNAL_HOP = "Signal.asend.<locals>.sync_send"


async def _get(path: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []
    bodies = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict:
        if bodies:
            return bodies.pop()
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    await asgi.application(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_a_request_starts_without_a_thread_hop_and_still_gives_its_connections_back(thread_hops):
    """Django's request_started receivers are sync and have nothing to do under ASGI (each request's
    sync code gets a fresh thread): they are gone, so a request reaches its view without a hop.
    request_finished keeps closing (giving back) the request thread's connections."""
    asgi._start_requests_without_a_thread_hop()  # again: Django's test clients reconnect its receiver
    status, body = await _get("/no-such-page")
    assert status == 404, body
    assert b'"code":"not_found"' in body.replace(b" ", b""), body
    assert SIGNAL_HOP not in thread_hops, thread_hops
    assert thread_hops[0] == "unknown_path", thread_hops  # the first hop is the (sync) view's own
    assert thread_hops[-1] == "HttpResponseBase.close", thread_hops  # the response closed: request_finished sent
    assert all(receiver() is not close_old_connections for _, receiver, *_ in request_started.receivers)
    assert any(receiver() is close_old_connections for _, receiver, *_ in request_finished.receivers)


def test_daphne_writes_every_chunk_past_twisteds_deprecation_proxy():
    """Daphne's ``http.Request.write`` of each chunk (an SSE turn's every event) reads the module
    itself, not Twisted's ``_ModuleProxy`` around it; the module is the one Twisted proxies."""
    import sys
    import types

    from daphne import http_protocol

    assert isinstance(http_protocol.http, types.ModuleType)
    assert http_protocol.http is object.__getattribute__(sys.modules["twisted.web.http"], "_module")
    assert asgi.application is not None

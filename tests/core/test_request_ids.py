"""``X-Request-Id`` on every answer (the client's own when safe, else a new one), and ``requestId``
in every problem body: DRF's errors, Django's 404, the size limit's 413, a throttle's 429, through
the test client (sync) and a real Daphne server (async)."""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client

from core import log_context
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db

NEW_ID = re.compile(r"[0-9a-f]{32}")


def _id_of(response) -> str:
    request_id = response.headers["X-Request-Id"]
    body = response.json() if response.headers.get("Content-Type", "").startswith("application/problem+json") else {}
    if body:
        assert body["requestId"] == request_id, body
    return request_id


@pytest.mark.parametrize(
    "sent",
    ["abc", "req-1.2_XYZ", "a" * 64, "0123456789abcdef0123456789abcdef", "..", "-"],
)
def test_a_safe_client_id_is_echoed(sent):
    response = Client().get("/health", headers={"X-Request-Id": sent})
    assert response.headers["X-Request-Id"] == sent


@pytest.mark.parametrize(
    "sent",
    ["a" * 65, "has space", "semi;colon", "slash/", 'quote"', "émoji", "line\\nbreak", "tab\tx", "", "a,b"],
)
def test_an_unsafe_or_overlong_client_id_is_replaced_with_a_new_one(sent):
    response = Client().get("/nowhere", headers={"X-Request-Id": sent})
    request_id = _id_of(response)
    assert NEW_ID.fullmatch(request_id), request_id
    assert request_id != sent


def test_each_request_without_an_id_gets_a_new_one():
    ids = {_id_of(Client().get("/nowhere")) for _ in range(3)}
    assert len(ids) == 3
    assert all(NEW_ID.fullmatch(request_id) for request_id in ids)


def test_problem_bodies_carry_the_request_id_drf_404_and_413(settings):
    client = Client()
    invalid = client.post("/auth/login", {}, content_type="application/json", headers={"X-Request-Id": "drf-400"})
    assert assert_problem(invalid, 400, "validation_error")["requestId"] == "drf-400"
    unauthenticated = client.get("/auth/verify", headers={"X-Request-Id": "drf-401"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["requestId"] == "drf-401"
    missing = client.get("/no/such/route", headers={"X-Request-Id": "django-404"})
    assert assert_problem(missing, 404, "not_found")["requestId"] == "django-404"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    too_large = client.post(
        "/auth/login", {"email": "x" * 200}, content_type="application/json", headers={"X-Request-Id": "size-413"}
    )
    assert assert_problem(too_large, 413, "request_too_large")["requestId"] == "size-413"
    assert too_large.headers["X-Request-Id"] == "size-413"


def test_a_throttled_answer_carries_the_request_id(settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "2/min"}
    client = Client()
    statuses = []
    for i in range(4):
        response = client.post(
            "/auth/login",
            {"email": "nobody@example.com", "password": "wrong-guess"},
            content_type="application/json",
            headers={"X-Request-Id": f"guess-{i}"},
        )
        statuses.append(response.status_code)
        assert response.json()["requestId"] == f"guess-{i}"
    assert statuses[-1] == 429, statuses
    assert int(response["Retry-After"]) >= 1


def test_the_ids_are_given_back_after_a_sync_request():
    Client().get("/health", headers={"X-Request-Id": "not-kept"})
    assert log_context.current_request_id() is None


def test_bound_ids_cross_tasks_and_thread_hops_both_ways():
    """What the ids rely on: a task started by the request's task, a ``sync_to_async`` hop (and what
    the thread binds comes back to the caller), an ``async_to_sync`` hop from that thread."""

    async def request() -> dict:
        log_context.start(request_id="hops")
        seen: dict = {}

        def in_thread() -> None:
            seen["thread"] = log_context.fields()
            log_context.bind(org_id="org-1", user_id="user-1")
            seen["back_in_loop"] = async_to_sync(_fields)()

        await sync_to_async(in_thread)()
        seen["after_hop"] = log_context.fields()
        seen["task"] = await asyncio.create_task(_fields())
        return seen

    async def _fields() -> dict:
        return log_context.fields()

    with log_context.scope():  # async_to_sync hands what the coroutine bound back to this thread
        seen = async_to_sync(request)()
    assert seen["thread"] == {"requestId": "hops"}
    both = {"requestId": "hops", "orgId": "org-1", "userId": "user-1"}
    assert seen["back_in_loop"] == both
    assert seen["after_hop"] == both
    assert seen["task"] == both
    # another thread's request never sees these
    elsewhere: list = []
    thread = threading.Thread(target=lambda: elsewhere.append(log_context.fields()))
    thread.start()
    thread.join()
    assert elsewhere == [{}]


@pytest.mark.django_db(transaction=True)
def test_a_real_server_echoes_and_replaces_ids_and_puts_them_in_problems(daphne_server, bundled_data):
    with httpx.Client(base_url=daphne_server.url, timeout=30) as http:
        assert http.get("/health", headers={"X-Request-Id": "live-1"}).headers["x-request-id"] == "live-1"
        replaced = http.get("/health", headers={"X-Request-Id": "x" * 65})
        assert NEW_ID.fullmatch(replaced.headers["x-request-id"])
        missing = http.get("/no/such/route", headers={"X-Request-Id": "live-404"})
        assert (missing.status_code, missing.json()["requestId"]) == (404, "live-404")
        invalid = http.post("/auth/login", json={}, headers={"X-Request-Id": "live-400"})
        assert (invalid.status_code, invalid.json()["requestId"]) == (400, "live-400")
        anonymous_stream = http.post("/api/chat/stream", json={}, headers={"X-Request-Id": "live-sse"})
        assert anonymous_stream.status_code == 401
        assert anonymous_stream.json()["requestId"] == anonymous_stream.headers["x-request-id"] == "live-sse"
        too_large = http.post(
            "/auth/login",
            content=b"{" + b" " * (31 * 1024 * 1024) + b"}",
            headers={"X-Request-Id": "live-413", "Content-Type": "application/json"},
        )
        assert (too_large.status_code, too_large.json()["requestId"]) == (413, "live-413")
        ids = {http.get("/no/such/route").json()["requestId"] for _ in range(3)}
        assert len(ids) == 3

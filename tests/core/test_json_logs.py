"""``LOG_FORMAT=json``: every line a real ``manage.py serve`` writes (its server's and its worker's
records, Django's own, the access log) is one JSON object carrying the ids of its request or turn,
and no secret appears in any of them at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
import uuid

import httpx
import pytest
from asgiref.sync import async_to_sync

from core import log_context

pytestmark = pytest.mark.django_db


def _record(logger: str, message: str, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(log_context.ContextFilter())
    handler.setFormatter(log_context.JsonFormatter())
    target = logging.getLogger(logger)
    target.addHandler(handler)
    try:
        target.error(message, "an argument", extra=extra, exc_info=sys.exc_info()[0] is not None)
    finally:
        target.removeHandler(handler)
    return stream.getvalue()


def test_a_record_is_one_json_line_with_the_bound_ids_and_nothing_else_of_the_record():
    with log_context.scope(request_id="req-1", org_id="org-1", user_id="user-1"):
        try:
            raise ValueError("boom")
        except ValueError:
            text = _record("tests.json", "multi\nline %s", sql="SELECT secret", params=["hunter2"])
    assert text.count("\n") == 1  # one line, whatever the message and the traceback hold
    line = json.loads(text)
    assert set(line) == {"time", "level", "logger", "message", "requestId", "orgId", "userId", "exception"}
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "tests.json", "multi\nline an argument")
    assert (line["requestId"], line["orgId"], line["userId"]) == ("req-1", "org-1", "user-1")
    assert "ValueError: boom" in line["exception"]
    assert "hunter2" not in text  # a record's extra attributes (a query's parameters) are never written
    outside = json.loads(_record("tests.json", "after %s"))
    assert set(outside) == {"time", "level", "logger", "message"}  # the scope gave every id back


def _wait_for(predicate, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


@pytest.mark.django_db(transaction=True)
def test_json_lines_of_serve_carry_the_ids_of_their_request_and_turn_and_no_secret(
    fake_llm, mcp_server, bundled_data, django_db_blocker
):
    from accounts.models import User
    from chat.models import Message
    from mcps.models import Connection
    from tests.conftest import make_specialist
    from tests.fakes.llm_server import Scenario
    from tests.servers import Daphne, redis_url_for_tests, server_env

    tag = uuid.uuid4().hex[:10]
    password = f"Planted-Passw0rd-{tag}"
    mcp_token = f"planted-mcp-token-{tag}"
    api_key = f"sk-planted-api-key-{tag}"
    env = server_env(
        {
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
            "OPENAI_BASE_URL": f"{fake_llm.url}/v1",
            "OPENAI_API_KEY": api_key,
            "REDIS_URL": redis_url_for_tests(),  # the worker is a process of its own
        }
    )
    env["DATABASE_URL"] = env["DATABASE_URL"].replace(
        "application_name=", f"application_name=jsonlogs-{uuid.uuid4().hex[:8]}-"
    )
    with django_db_blocker.unblock():
        server = Daphne(env, all_cores=(1, 1))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            email = f"owner-{tag}@example.com"
            registered = http.post(
                "/register",
                json={"email": email, "password": password, "name": "Owner", "organizationName": "Logs"},
                headers={"X-Request-Id": f"register-{tag}"},
            )
            assert registered.status_code == 201, registered.text
            org_id = registered.json()["organization"]["id"]
            user_id = str(User.objects.get(email=email).pk)
            assert http.post("/auth/login", json={"email": email, "password": password + "x"}).status_code == 401
            login = http.post("/auth/login", json={"email": email, "password": password}).json()
            access, refresh = login["accessToken"], login["refreshToken"]
            http.headers["authorization"] = f"Bearer {access}"
            created = http.post(
                f"/orgs/{org_id}/mcps",
                json={
                    "name": "Tools",
                    "url": mcp_server.url("streamable_http"),
                    "transport": "streamable_http",
                    "authType": "bearer",
                    "token": mcp_token,
                },
            )
            assert created.status_code == 201, created.text
            synced = http.post(
                f"/orgs/{org_id}/mcps/{created.json()['id']}/sync", headers={"X-Request-Id": f"sync-{tag}"}
            )
            assert synced.status_code == 200, synced.text
            connection = Connection.all_orgs.get(pk=created.json()["id"])
            specialist = make_specialist(connection.organization, model="gpt-4o-mini")
            specialist.tools.set(connection.tools.filter(name="add"))
            fake_llm.script(
                Scenario(chunks=[], tool_calls=[{"id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}}]),
                Scenario(chunks=["3"]),
            )
            queued = http.post(
                "/api/chat/async",
                json={"specialistId": str(specialist.pk), "message": "add later"},
                headers={"X-Request-Id": f"async-{tag}"},
            )
            assert queued.status_code == 202, queued.text
            message_id = queued.json()["messageId"]
            _wait_for(lambda: Message.all_orgs.get(pk=message_id).status in ("completed", "failed"))
            done = Message.all_orgs.get(pk=message_id)
            assert (done.status, done.tool_calls[0]["result"]) == ("completed", "3")  # the worker used the token
            missing = http.get("/no/such/route", headers={"X-Request-Id": f"missing-{tag}"})
            assert missing.status_code == 404
            foreign = http.get("/health", headers={"X-Request-Id": f"host-{tag}", "Host": "evil.example"})
            assert foreign.status_code == 400
            assert http.post("/auth/logout", json={"refreshToken": refresh}).status_code == 204
    finally:
        server.stop()
    text = server.log.read_text()

    records = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    for record in records:
        assert isinstance(record, dict), record
        assert {"time", "level", "logger", "message"} <= set(record), record  # "process": a child's (relayed)
        # a child's line that was not a JSON record would have been wrapped by the supervisor
        assert not (record["logger"] == "leancore.serve" and record["level"] == "ERROR"), record
        if "messageId" in record:
            assert "orgId" in record, record
    assert {record.get("process") for record in records} >= {"serve", "server-1", "worker-1"}

    def of(request_id: str) -> list[dict]:
        return [record for record in records if record.get("requestId") == request_id]

    def loggers(request_id: str) -> set[str]:
        return {record["logger"] for record in of(request_id)}

    # Django's own lines of a request carry its id, as does the access log's
    assert {"django.security.DisallowedHost", "leancore.access"} <= loggers(f"host-{tag}")
    assert any("/no/such/route" in r["message"] and " 404 " in r["message"] for r in of(f"missing-{tag}"))
    # the org and the user, once known, on the request's lines (its access line included)
    for request_id in (f"sync-{tag}", f"async-{tag}"):
        access_lines = [r for r in of(request_id) if r["logger"] == "leancore.access"]
        assert len(access_lines) == 1, of(request_id)
        assert (access_lines[0]["orgId"], access_lines[0]["userId"]) == (org_id, user_id)
    assert any(r["logger"].startswith("mcps") or "mcp" in r["message"].lower() for r in of(f"sync-{tag}"))
    # the worker's lines for the queued turn: its message, its org, the request that queued it
    turn_lines = [r for r in of(f"async-{tag}") if r.get("process") == "worker-1"]
    assert turn_lines, "no worker line for the turn"
    for record in turn_lines:
        assert (record["messageId"], record["orgId"]) == (message_id, org_id), record
    assert any("/v1/chat/completions" in r["message"] for r in turn_lines)  # the model call
    assert any(r.get("userId") == user_id for r in turn_lines)  # the sender, bound where the turn starts
    assert not [r for r in records if r.get("messageId") == message_id and r.get("requestId") != f"async-{tag}"]

    secrets = {
        "password": password,
        "API key": api_key,
        "MCP token": mcp_token,
        "access token": access,
        "refresh token": refresh,
    }
    for name, secret in secrets.items():
        assert secret not in text, name


@pytest.mark.django_db(transaction=True)  # the job's database hops close the connection, as in a worker
def test_a_queued_turn_binds_its_ids_for_its_own_lines_only():
    from chat.jobs import run_queued_message

    with log_context.scope(request_id="outer"):
        assert async_to_sync(run_queued_message)(uuid.uuid4(), request_id="queued-by") == "skipped"
        assert log_context.fields() == {"requestId": "outer"}  # nothing of the job's is left behind

"""Org API keys against what outlives a request: a revoked or expired key's queued turns do not run;
the key's throttle on the stream and its events; a limited or member key's usage; who opened a
circuit; no route answers a key with a server error."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import BudgetAlert, LedgerEntry
from chat import queued
from chat.models import ChatSession
from orgs.models import ApiKey, Role
from tests.conftest import client_for, make_specialist
from tests.orgs.test_api_key_auth import key_client, new_key

pytestmark = pytest.mark.django_db


def _key(secret):
    return ApiKey.all_orgs.get(prefix=secret.split("_")[1])


def test_queued_turn_of_a_revoked_key_does_not_run(org, owner):
    spec = make_specialist(org)
    secret = new_key(org)
    r = key_client(secret).post("/api/chat/async", {"specialistId": str(spec.pk), "message": "hi"}, format="json")
    assert r.status_code == 202, r.content
    key = _key(secret)
    assert client_for(owner).delete(f"/orgs/{org.pk}/api-keys/{key.pk}").status_code == 204
    turn = queued.load_queued_turn(message_id=uuid.UUID(r.json()["messageId"]))
    # revoked "at once": the worker should not start (and bill) a turn of a revoked key
    assert turn is None, "worker picked up and started the revoked key's queued turn"


def test_queued_turn_of_an_expired_key_does_not_run(org, owner):
    spec = make_specialist(org)
    secret = new_key(org)
    r = key_client(secret).post("/api/chat/async", {"specialistId": str(spec.pk), "message": "hi"}, format="json")
    ApiKey.all_orgs.filter(pk=_key(secret).pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    turn = queued.load_queued_turn(message_id=uuid.UUID(r.json()["messageId"]))
    assert turn is None


def test_key_throttle_applies_to_stream_and_events(org, owner, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "api_key": "3/min"}
    spec = make_specialist(org)
    c = key_client(new_key(org))
    codes = [c.get("/specialists").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = c.post("/api/chat/stream", {"specialistId": str(spec.pk), "message": "hi"}, format="json")
    assert r.status_code == 429, r.status_code
    r = c.get(f"/api/chat/messages/{uuid.uuid4()}/events", HTTP_ACCEPT="text/event-stream")
    assert r.status_code == 429, r.status_code


def _usage(org, specialist, credits, **extra):
    values = {
        "organization": org,
        "kind": LedgerEntry.Kind.USAGE,
        "amount": -credits,
        "specialist_id": specialist.pk,
        "specialist_name": specialist.name,
        "model": "gpt-4o-mini",
        "description": "call",
        "input_tokens": 10,
        "output_tokens": 10,
        "balance_after": Decimal("0"),
    }
    values.update(extra)
    return LedgerEntry.all_orgs.create(**values)


def test_limited_key_summary_and_ledger_hide_other_specialists(org, owner):
    mine = make_specialist(org, name="Mine")
    other = make_specialist(org, name="Other")
    _usage(org, mine, Decimal("1"), user_id=owner.pk)
    _usage(org, other, Decimal("7"), user_id=owner.pk)
    c = key_client(new_key(org, role=Role.ADMIN, specialist_ids=[mine.pk]))
    s = c.get("/billing/usage/summary?groupBy=specialist").json()
    assert [row["specialistId"] for row in s["rows"]] == [str(mine.pk)], s
    for q in ("", f"?specialistId={other.pk}", "?kind=usage"):
        rows = c.get(f"/billing/credits/usage{q}").json()["results"]
        assert all(row.get("specialistId") != str(other.pk) for row in rows), rows
    csv = c.get("/billing/credits/usage", HTTP_ACCEPT="text/csv")
    body = b"".join(csv.streaming_content).decode()
    assert str(other.pk) not in body


def test_member_key_summary_is_its_own(org, owner):
    spec = make_specialist(org)
    _usage(org, spec, Decimal("3"), user_id=owner.pk)
    c = key_client(new_key(org, role=Role.MEMBER))
    for g in ("member", "specialist", "apiKey", "day", "model", "member,apiKey"):
        s = c.get(f"/billing/usage/summary?groupBy={g}").json()
        assert s["totals"]["calls"] == 0, (g, s)
    rows = c.get(f"/billing/credits/usage?userId={owner.pk}").json()["results"]
    assert all(r["kind"] != "usage" for r in rows)
    users = c.get("/users").json()["results"]
    assert all(u["spentThisPeriod"] is None for u in users), users


def test_key_opening_circuit_is_not_attributed_to_an_operator(org, owner):
    c = key_client(new_key(org, role=Role.ADMIN))
    r = c.post("/billing/circuit/toggle", {"state": "open", "reason": "test"}, format="json")
    assert r.status_code == 200, r.content
    alert = BudgetAlert.all_orgs.filter(organization=org).order_by("-created_at").first()
    r2 = client_for(owner).post("/billing/circuit/toggle", {"state": "closed", "reason": "back"}, format="json")
    assert r2.status_code == 200, r2.content  # the org admin can close it again (no operator's circuit)
    assert "operator" not in alert.message, alert.message


@pytest.mark.parametrize(("role", "limited"), [(Role.MEMBER, False), (Role.ADMIN, False), (Role.ADMIN, True)])
def test_no_500_for_keys_on_get_routes(org, owner, role, limited):
    """Walk every GET route with real ids of the org: never a 5xx for a key."""
    from django.urls import URLResolver, get_resolver

    from tasks.models import Project
    from workspaces.models import Workspace

    spec = make_specialist(org)
    ws = Workspace.all_orgs.create(organization=org, name="W", created_by=owner)
    session = ChatSession.all_orgs.create(organization=org, specialist=spec, created_by=owner, title="t", workspace=ws)
    proj = (
        Project.all_orgs.create(organization=org, name="P", created_by=owner)
        if "created_by" in [f.name for f in Project._meta.fields]
        else Project.all_orgs.create(organization=org, name="P")
    )
    _usage(org, spec, Decimal("1"), user_id=owner.pk)
    secret = new_key(org, role=role, **({"specialist_ids": [spec.pk]} if limited else {}))
    keyobj = _key(secret)
    ids = {"org_id": org.pk, "pk": None, "message_id": uuid.uuid4(), "session_id": session.pk}

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            else:
                yield prefix + str(p.pattern), p

    c = key_client(secret)
    bad = []
    import re

    for route, _p in walk(get_resolver().url_patterns):
        if route.startswith("admin") or "<path" in route or "ws/" in route:
            continue
        path = "/" + route.lstrip("^").rstrip("$")
        if "(" in path or "?" in path:
            continue

        def sub(m, path=path):
            name = m.group(2)
            if name == "pk":
                if "orgs" in path and "api-keys" in path:
                    return str(keyobj.pk)
                if path.startswith("/orgs"):
                    return str(org.pk)
                if "workspaces" in path:
                    return str(ws.pk)
                if "sessions" in path:
                    return str(session.pk)
                if "specialists" in path:
                    return str(spec.pk)
                if "users" in path:
                    return str(owner.pk)
                if "projects" in path:
                    return str(proj.pk)
                return str(uuid.uuid4())
            return str(ids.get(name) or uuid.uuid4())

        path = re.sub(r"<(\w+):(\w+)>", sub, path)
        for accept in ("application/json", "text/csv"):
            r = c.get(path, HTTP_ACCEPT=accept)
            if r.status_code >= 500:
                bad.append((path, accept, r.status_code, r.content[:300]))
    assert not bad, bad

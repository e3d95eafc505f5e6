"""Platform staff through the API: in an organization they are not a member of they read what its
admins read and write nothing (403 ``permission_denied``), except granting credits with the
``billing.manage_credits`` permission; where they are a member their role decides.

The operations are derived from the URLconf (every route of an org-scoped view, every method it
serves) and checked against the schema, as the cross-tenant walk does: a new write is covered
without being listed here."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import get_resolver
from django.utils.module_loading import import_string

from billing.models import Circuit, LedgerEntry
from orgs.api import OrgContextMixin
from orgs.models import Membership, Organization, Role
from tests.conftest import add_member, client_for, make_org, make_user
from tests.core.test_cross_tenant_walk import (
    BODY_CASES,
    PARAM,
    ROUTE_IDS,
    Watch,
    World,
    _methods,
    _problem_code,
    _schema,
    _view_class,
    _walk,
    build_world,
    changes,
    snapshot,
)

pytestmark = pytest.mark.django_db

# What a body names by id, field → model (from the walk's own body cases: the schema's id fields).
BODY_ID_MODELS = {case.field: case.model for case in BODY_CASES}


@pytest.fixture
def foreign(settings) -> World:
    settings.THROTTLE_RATES = {
        **settings.THROTTLE_RATES,
        "chat": "100000/min",
        "chat_org": "100000/min",
        "upload": "100000/min",
    }
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    return build_world("outside")


def operator(*, granting: bool = False):
    user = make_user(is_staff=True, name="Operator")
    if granting:
        user.user_permissions.add(Permission.objects.get(codename="manage_credits", content_type__app_label="billing"))
    return type(user).objects.get(pk=user.pk)  # permissions are cached per user object


def org_operations() -> list[tuple[str, str, Any]]:
    """(route, method, view class) of every org-scoped route (each once: not the trailing-slash
    twin), GET and the writes."""
    found = []
    for route, callback, _pattern in _walk(get_resolver().url_patterns):
        view = _view_class(callback)
        if route.startswith("admin") or route.endswith("/") or view is None or not issubclass(view, OrgContextMixin):
            continue
        for method in _methods(callback):
            found.append((route, method, view, getattr(callback, "actions", {}).get(method, method)))
    return found


def _schema_path(route: str) -> str:
    def camel(name: str) -> str:
        name = "id" if name == "pk" else name
        head, *rest = name.split("_")
        return "{" + head + "".join(part.title() for part in rest) + "}"

    return "/" + PARAM.sub(lambda m: camel(m.group(1)), route)


def _path(route: str, world: World) -> str:
    return "/" + PARAM.sub(lambda m: str(world.own(ROUTE_IDS[route][m.group(1)]).pk), route)


def _body(route: str, method: str, world: World) -> tuple[dict, str]:
    """The schema's example body of the operation, its ids the foreign org's own (a valid request:
    only the caller is wrong), with a real file where it takes one."""
    examples = import_string("leancore.schema.REQUEST_EXAMPLES")
    body: dict[str, Any] = dict(examples.get((_schema_path(route), method), {}))
    for name, value in list(body.items()):
        if name in BODY_ID_MODELS:
            pk = str(world.own(BODY_ID_MODELS[name]).pk)
            body[name] = [pk] if isinstance(value, list) else pk
        if name == "file":
            body[name] = SimpleUploadedFile("planted.txt", b"planted", "text/plain")
    if "file" in body:
        return body, "multipart"
    return body, "json"


def test_the_operations_are_those_of_the_schema():
    """The derivation misses nothing: every org-scoped operation of the schema is one of them."""
    derived = {(_schema_path(route), method) for route, method, _view, _key in org_operations()}
    schema = _schema()
    org_scoped = {
        (path, method)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "**Access:** a bearer access token of" in operation.get("description", "")
    }
    assert org_scoped, "the schema no longer says who may call an operation"
    assert org_scoped - derived == set()
    writes = [op for op in org_operations() if op[1] != "get"]
    assert len(writes) >= 30, writes


def test_staff_outside_an_org_write_nothing_there(foreign):
    """The attack: an operator without a membership sends every write of the API, each with a valid
    body, into the organization. Every one is 403 ``permission_denied`` (a grant without the
    permission too) and nothing changes."""
    staff = operator()
    client = client_for(staff, foreign.org)
    before = snapshot()
    watch = Watch()
    wrong, changed = [], []
    # the chats first (a valid turn: before any write could pause its specialist), the deletes last
    operations = sorted(org_operations(), key=lambda op: (op[1] == "delete", not op[0].startswith("api/chat")))
    for route, method, _view, _key in operations:
        if method == "get":
            continue
        body, fmt = _body(route, method, foreign)
        response = getattr(client, method)(_path(route, foreign), body, format=fmt, HTTP_ACCEPT="application/json")
        if response.status_code != 403 or _problem_code(response) != "permission_denied":
            wrong.append((method.upper(), route, response.status_code, response.content[:200]))
        diff = watch.changed()
        if diff:
            changed.append((method.upper(), route, diff))
    assert wrong == [], "\n".join(map(str, wrong))
    assert changed == [], changed
    assert changes(before, snapshot()) == {}


def test_staff_outside_an_org_read_what_its_admins_read(foreign):
    staff = operator()
    client = client_for(staff, foreign.org)
    refused = []
    reads = [op for op in org_operations() if op[1] == "get"]
    required_query = {"billing/usage/summary": {"groupBy": "day"}}  # reads that need a parameter
    for route, _method, _view, _key in reads:
        response = client.get(_path(route, foreign), required_query.get(route, {}))
        if response.status_code != 200:
            refused.append((route, response.status_code, response.content[:200]))
    assert refused == [], "\n".join(map(str, refused))
    assert len(reads) >= 20
    # an admin's view of the chats: every member's session, not only the caller's (none)
    sessions = client.get("/api/chat/sessions").json()
    assert sessions["count"] == 1
    assert sessions["results"][0]["id"] == str(foreign.session.pk)


def test_grant_needs_the_permission_not_only_staff(foreign):
    grants = LedgerEntry.all_orgs.filter(organization=foreign.org, kind="grant")
    before = grants.count()  # the sign-up credits
    without = client_for(operator(), foreign.org)
    response = without.post("/billing/credits/grant", {"amount": "5", "reason": "x"}, format="json")
    assert (response.status_code, _problem_code(response)) == (403, "permission_denied")
    assert grants.count() == before
    granting = client_for(operator(granting=True), foreign.org)
    response = granting.post("/billing/credits/grant", {"amount": "5", "reason": "Pilot"}, format="json")
    assert response.status_code == 201, response.content
    assert grants.count() == before + 1


def test_grant_is_the_only_operator_write():
    """Only the grant lets an operator write outside their orgs (it checks its own permission)."""
    exempt = {(route, method) for route, method, view, key in org_operations() if key in view.operator_writes}
    assert exempt == {("billing/credits/grant", "post")}


def test_staff_who_are_members_act_by_their_role():
    org = make_org(name="Staffed")
    staff = add_member(org, operator(), role=Role.MEMBER)
    client = client_for(staff, org)
    denied = client.put(f"/orgs/{org.pk}", {"name": "By a member"}, format="json")
    assert (denied.status_code, _problem_code(denied)) == (403, "permission_denied")
    toggled = client.post("/billing/circuit/toggle", {"state": "open"}, format="json")
    assert (toggled.status_code, _problem_code(toggled)) == (403, "permission_denied")
    assert Circuit.all_orgs.get(organization=org).state == "closed"
    Membership.all_orgs.filter(organization=org, user=staff).update(role=Role.ADMIN)
    assert client.put(f"/orgs/{org.pk}", {"name": "By an admin"}, format="json").status_code == 200
    assert Organization.objects.get(pk=org.pk).name == "By an admin"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_staff_outside_an_org_cannot_chat_over_the_websocket(bundled_data, settings):
    """The socket reads (an admin may watch any session); a message frame is refused."""
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from accounts.services import issue_tokens
    from chat.models import Message
    from leancore.asgi import application

    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "chat": "1000/min", "chat_org": "1000/min"}

    def setup() -> tuple[World, str, int]:
        world = build_world("outside")
        return world, issue_tokens(user=operator()).access, Message.all_orgs.count()

    world, token, messages = await database_sync_to_async(setup)()
    communicator = WebsocketCommunicator(application, f"/ws/chat/sessions/{world.session.pk}/?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "message", "message": "Spend their credits"})
    frame = await communicator.receive_json_from(timeout=5)
    assert frame["event"] == "error", frame
    assert frame["data"]["code"] == "permission_denied", frame
    await communicator.disconnect()
    assert await database_sync_to_async(Message.all_orgs.count)() == messages


def test_the_access_line_says_so():
    text = {
        (path, method): operation.get("description", "")
        for path, operations in _schema()["paths"].items()
        for method, operation in operations.items()
    }
    assert "platform staff only where they are members" in text[("/workspaces", "post")]
    assert "platform staff in any" in text[("/workspaces", "get")]
    assert re.search(r"billing\.manage_credits", text[("/billing/credits/grant", "post")])

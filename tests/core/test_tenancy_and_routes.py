"""The org context rules and the route classification walk."""

from __future__ import annotations

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from orgs.models import Role
from tests.conftest import add_member, assert_problem, client_for, make_org, make_user

pytestmark = pytest.mark.django_db

ACCESS_CLASSES = {"public", "user", "org"}


def test_single_org_is_used_without_header(member):
    assert client_for(member).get("/users").status_code == 200


def test_ambiguous_without_header_is_org_required(member):
    add_member(make_org(name="Second"), member)
    assert_problem(client_for(member).get("/users"), 400, "org_required")


def test_no_org_at_all_is_org_required(db):
    assert_problem(client_for(make_user()).get("/users"), 400, "org_required")


def test_malformed_header_is_invalid_org_id(member):
    response = client_for(member).get("/users", HTTP_X_ORG_ID="nope")
    assert_problem(response, 400, "invalid_org_id")


def test_header_for_foreign_or_unknown_org_is_not_a_member(member, other_org):
    assert_problem(client_for(member, other_org).get("/users"), 403, "not_a_member")
    response = client_for(member).get("/users", HTTP_X_ORG_ID=str(uuid.uuid4()))
    assert_problem(response, 403, "not_a_member")


def test_invited_membership_gives_no_access(org, admin_user, django_capture_on_commit_callbacks):
    pending = make_user()
    from orgs.models import Membership

    Membership.all_orgs.create(organization=org, user=pending, role=Role.MEMBER, status=Membership.Status.INVITED)
    assert_problem(client_for(pending, org).get("/users"), 403, "not_a_member")


def test_staff_may_act_in_any_existing_org(staff, org):
    assert client_for(staff, org).get("/users").status_code == 200
    assert_problem(client_for(staff).get("/users", HTTP_X_ORG_ID=str(uuid.uuid4())), 403, "not_a_member")


def test_header_picks_among_several(member, org):
    second = make_org(name="Second")
    add_member(second, member, role=Role.ADMIN)
    body = client_for(member, second).get("/users").json()
    assert member.email in {r["email"] for r in body["results"]}
    assert body["count"] == 2


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _access(callback):
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    return getattr(view_class, "access", None) or getattr(callback, "access", None)


def test_every_route_is_in_exactly_one_access_class(settings):
    unclassified = []
    seen = 0
    for route, callback in _walk(get_resolver().url_patterns):
        if route.startswith("admin/"):
            continue  # Django's admin: staff session login of its own
        seen += 1
        access = _access(callback)
        if access not in ACCESS_CLASSES:
            unclassified.append(route)
    assert seen > 20
    assert unclassified == []


def test_declared_classes_hold(anon, member, org):
    """Spot-check that the declaration matches behaviour: public routes need no token,
    user routes need a token but no org, org routes need the org."""
    ambiguous = make_user()
    add_member(make_org(name="One"), ambiguous)
    add_member(make_org(name="Two"), ambiguous)
    client = client_for(ambiguous)
    for route, callback in _walk(get_resolver().url_patterns):
        if "<" in route or route.startswith("admin/") or route.endswith("/") or route == "":
            continue
        access = _access(callback)
        methods = {m for m in ("get", "post") if hasattr(getattr(callback, "cls", object), m)} or {"get"}
        if hasattr(callback, "actions"):
            methods = set(callback.actions)
        method = "get" if "get" in methods else "post"
        response = (
            getattr(client, method)(f"/{route}", {}, format="json") if method == "post" else client.get(f"/{route}")
        )
        anonymous = getattr(anon, method)(f"/{route}")
        if access == "public":
            assert anonymous.status_code != 401, route
        else:
            assert anonymous.status_code == 401, route
        if access == "org":
            assert response.status_code == 400, route
            assert response.json()["code"] == "org_required", route
        elif access == "user":
            assert response.status_code != 400 or response.json()["code"] != "org_required", route


def _methods(callback) -> list[str]:
    if hasattr(callback, "actions"):
        return sorted(callback.actions)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]


def test_every_route_with_ids_refuses_strangers(anon, member, org):
    """Routes with ids: no token → 401 (unless public); an id that is not the caller's → 404."""
    client = client_for(member)
    checked = 0
    wrong = []
    for route, callback in _walk(get_resolver().url_patterns):
        if "<" not in route or route.startswith("admin/") or route.endswith("/"):
            continue
        own_org = str(org.pk) if route.count("<") > 1 else str(uuid.uuid4())  # only the org id: a stranger's
        path = "/" + route.replace("<uuid:org_id>", own_org)
        for name in ("pk", "tool_id", "org_id", "file_id", "message_id"):
            path = path.replace(f"<uuid:{name}>", str(uuid.uuid4()))
        for method in _methods(callback):
            checked += 1
            anonymous = getattr(anon, method)(path, {}, format="json") if method != "get" else anon.get(path)
            if _access(callback) != "public" and anonymous.status_code != 401:
                wrong.append((method, route, "anonymous", anonymous.status_code))
            response = getattr(client, method)(path, {}, format="json") if method != "get" else client.get(path)
            if response.status_code not in (403, 404):
                wrong.append((method, route, "member", response.status_code))
    assert checked >= 15
    assert wrong == [], wrong


def _view_classes():
    for route, callback in _walk(get_resolver().url_patterns):
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view_class is not None and not route.startswith("admin/"):
            yield route, view_class


def test_no_org_scoped_view_overrides_the_queryset_around_its_org_filter():
    """Views narrow their org's rows in ``scope_queryset`` only; a ``get_queryset`` of their own
    could read around the org filter of ``orgs.api.OrgScopedQuerysetMixin``."""
    from orgs.api import OrgScopedQuerysetMixin

    scoped = {cls for _, cls in _view_classes() if issubclass(cls, OrgScopedQuerysetMixin)}
    assert len(scoped) >= 8
    overriding = sorted(
        cls.__qualname__
        for cls in scoped
        if cls.get_queryset is not OrgScopedQuerysetMixin.get_queryset
        or any("get_queryset" in vars(base) for base in cls.__mro__[: cls.__mro__.index(OrgScopedQuerysetMixin)])
    )
    assert overriding == []


def test_every_org_owned_model_reads_through_for_org(org, other_org):
    """Every model with a path to an organization has ``objects.for_org``, and it keeps to that org."""
    from django.apps import apps

    from chat.models import Message

    owned = []
    for model in apps.get_models():
        names = {f.name for f in model._meta.get_fields()}
        if model.__module__.split(".")[0] in {"django", "rest_framework_simplejwt", "django_tasks_db"}:
            continue
        if "organization" in names or model is Message:
            owned.append(model)
            assert hasattr(model.objects, "for_org"), model
            query = str(model.objects.for_org(org).query)
            assert str(org.pk).replace("-", "") in query.replace("-", ""), model
    assert len(owned) >= 15

"""The lighter read path of list pages (core.serializers, core.renderers) answers the same bytes as
DRF's generic serializer walk and djangorestframework_camel_case's renderer: every list endpoint, a
page of the default size and one of 100, key for key and in the same order."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.utils.functional import lazy
from django_filters.rest_framework import DjangoFilterBackend
from djangorestframework_camel_case.settings import api_settings
from djangorestframework_camel_case.util import camelize as library_camelize
from rest_framework import serializers
from rest_framework.views import APIView

from core import pagination, renderers
from core.filter_backends import FilterSetBackend
from core.row_json import JsonRow
from core.serializers import PlainReadModelSerializer
from orgs.api import OrgContextMixin
from orgs.views import OrganizationListView
from specialists.serializers import SpecialistPageSerializer
from tests.conftest import client_for
from tests.core.test_query_counts import LISTS, _url, populated  # noqa: F401  # populated: the fixture

pytestmark = pytest.mark.django_db


def _old_path(monkeypatch) -> None:
    """Every page read and rendered as before: the caller's user, then their membership; django-filter's
    form built; the page's rows read as model instances; DRF's own to_representation; a specialist's tools through its relation, row by row; the
    library's camelize."""
    monkeypatch.setattr(OrgContextMixin, "get_authenticators", APIView.get_authenticators)
    monkeypatch.setattr(FilterSetBackend, "filter_queryset", DjangoFilterBackend.filter_queryset)
    monkeypatch.setattr(pagination, "_page_rows", lambda page, view: None)
    monkeypatch.setattr(OrganizationListView, "count_page_rows", lambda self, queryset: None)
    monkeypatch.setattr(PlainReadModelSerializer, "to_representation", serializers.ModelSerializer.to_representation)
    monkeypatch.setattr(SpecialistPageSerializer, "to_representation", serializers.ListSerializer.to_representation)
    monkeypatch.setattr(renderers, "camelize", lambda data: library_camelize(data, **api_settings.JSON_UNDERSCOREIZE))


def _pages(client, urls: list[str]) -> list[bytes]:
    answers = [client.get(url) for url in urls]
    assert [answer.status_code for answer in answers] == [200] * len(urls), urls
    return [answer.content for answer in answers]


def _urls(org, populated) -> list[str]:  # noqa: F811
    return [_url(path, org, populated) + query for path in LISTS for query in ("", "?pageSize=100")]


def test_every_list_page_is_the_same_bytes_as_through_the_generic_path(org, owner, populated, monkeypatch):  # noqa: F811
    client, urls = client_for(owner), _urls(org, populated)
    new = _pages(client, urls)
    _old_path(monkeypatch)
    old = _pages(client, urls)
    for url, fast, generic in zip(urls, new, old, strict=True):
        assert fast == generic, url
        assert json.loads(fast)["count"] >= 1, url


def test_the_comparison_fires_on_a_key_rendered_differently(org, owner, populated, monkeypatch):  # noqa: F811
    client, urls = client_for(owner), [_url("/specialists", org, populated)]  # a page of tuples
    monkeypatch.setattr(renderers, "_key_plan", lambda key: (key, False, False))  # snake_case left as it is
    monkeypatch.setattr(renderers, "_shape_plan", renderers._shape_plan.__wrapped__)  # the shapes planned anew
    new = _pages(client, urls)
    _old_path(monkeypatch)
    assert new != _pages(client, urls)


def test_a_page_builds_its_filter_form_only_when_a_filter_is_named(org, owner, populated, monkeypatch):  # noqa: F811
    forms: list[str] = []
    build = DjangoFilterBackend.get_filterset

    def counted(self, request, queryset, view):
        forms.append(request.get_full_path())
        return build(self, request, queryset, view)

    monkeypatch.setattr(DjangoFilterBackend, "get_filterset", counted)
    client = client_for(owner)
    assert client.get("/tasks?pageSize=2&ordering=title").json()["count"] == 6  # no filter named
    assert forms == []
    assert client.get("/tasks?status=done").json()["count"] == 0
    assert client.get("/tasks?status=todo").json()["count"] == 6
    assert client.get("/tasks?status=nonsense").json()["code"] == "validation_error"
    assert len(forms) == 3


lazy_str = lazy(str, str)

TRICKY: list[Any] = [
    {
        "created_at": "x",
        "field_1": 1,
        "a_b_c_d": [{"inner_key": None, 3: "three"}],
        "arguments": {"keep_me": {"as_is": 1}},
        "input_schema": {"snake_case": True},
        "result": [{"kept_key": 1}],
        lazy_str("lazy_key"): lazy_str("lazy value"),
        "tuple_value": ("a_b", {"c_d": 1}),
        "amount": Decimal("1.500000"),
        "already_camel": {"camelCase": 1, "_leading": 2, "trailing_": 3, "UPPER_CASE": 4},
        "x_y": 1,
        "xY": 2,
    },
    [1, "two", None, True, 2.5],
    "plain_string",
    # plain string keys only: the shape of a row, planned once
    {"x_y": 1, "xY": 2, "z_w": 3},
    [{"created_at": "t", "input_schema": {"keep_me": 1}, "nested_row": {"inner_key": [{"a_b": 1}]}}] * 2,
]


@pytest.mark.parametrize("data", TRICKY)
def test_camelize_matches_the_library(data):
    expected = library_camelize(data, **api_settings.JSON_UNDERSCOREIZE)
    assert json.dumps(renderers.camelize(data), default=str) == json.dumps(expected, default=str)
    assert renderers.CachedCamelCaseJSONRenderer().render(data) == renderers.CamelCaseJSONRenderer().render(data)


# the lists whose serializer reads a page as tuples of columns (``pages_read_as_rows``)
READ_AS_ROWS = [
    "/api/chat/sessions",
    "/billing/alerts",
    "/billing/credits/usage",
    "/billing/model-rates",
    "/billing/packages",
    "/mcp/catalog",
    "/orgs",
    "/orgs/{orgId}/api-keys",
    "/orgs/{orgId}/mcps",
    "/orgs/{orgId}/mcps/{id}/tools",
    "/orgs/{orgId}/webhooks",
    "/orgs/{orgId}/webhooks/{id}/deliveries",
    "/projects",
    "/specialists",
    "/tasks",
    "/users",
    "/workspaces",
    "/workspaces/{id}/artifacts",
    "/workspaces/{id}/files",
    "/workspaces/{id}/threads",
]


def test_the_busiest_list_pages_read_their_rows_as_tuples_or_as_json(org, owner, populated, monkeypatch):  # noqa: F811
    rows: list[type] = []
    represent = PlainReadModelSerializer.to_representation

    def counted(self, row):
        rows.append(type(row))
        return represent(self, row)

    monkeypatch.setattr(PlainReadModelSerializer, "to_representation", counted)
    client = client_for(owner)
    written = set()
    for path, query in [(path, query) for path in READ_AS_ROWS for query in ("", "?pageSize=100")]:
        url = _url(path, org, populated) + query
        rows.clear()
        results = json.loads(_pages(client, [url])[0])["results"]
        assert len(rows) == len(results) >= 1, url
        assert all(issubclass(row, tuple) for row in rows) or set(rows) == {JsonRow}, url
        if rows[0] is JsonRow:
            written.add(path)
    assert written == WRITTEN_BY_POSTGRESQL


# The lists whose every field is a column PostgreSQL writes as DRF does (core.row_json): their rows
# are each one text, the row's JSON, written by the database.
WRITTEN_BY_POSTGRESQL = {
    "/api/chat/sessions",
    "/billing/credits/usage",
    "/billing/model-rates",
    "/billing/packages",
    "/mcp/catalog",
    "/orgs",
    "/orgs/{orgId}/webhooks",
    "/orgs/{orgId}/webhooks/{id}/deliveries",
    "/projects",
    "/tasks",
    "/workspaces",
    "/workspaces/{id}/artifacts",
    "/workspaces/{id}/files",
    "/workspaces/{id}/threads",
}


def test_a_relation_read_from_a_row_is_the_same_bytes(org, owner, populated, monkeypatch):  # noqa: F811
    """A related field (an alert's ``acknowledgedBy``, a key's ``createdBy``) reads the row's column
    through ``serializable_value`` as it reads a model's."""
    from django.utils import timezone

    from billing.models import BudgetAlert

    BudgetAlert.all_orgs.create(
        organization=org,
        kind="circuit_opened",
        period_start=timezone.now(),
        message="m",
        acknowledged_at=timezone.now(),
        acknowledged_by=owner,
    )
    client = client_for(owner)
    urls = [_url(path, org, populated) for path in ("/billing/alerts", "/orgs/{orgId}/api-keys")]
    new = _pages(client, urls)
    assert str(owner.pk) in new[0].decode()
    assert str(owner.pk) in new[1].decode()
    _old_path(monkeypatch)
    assert new == _pages(client, urls)


def test_the_callers_orgs_are_counted_from_their_active_memberships(owner, monkeypatch):
    """``/orgs`` counts the caller's active memberships: an invitation not yet accepted is not an org
    of theirs, and the count is the generic one's."""
    from orgs.models import Membership
    from tests.conftest import make_org

    make_org(owner=owner, name="Second")
    pending = make_org(name="Invited to")
    Membership.all_orgs.create(organization=pending, user=owner, role="member", status=Membership.Status.INVITED)
    client = client_for(owner)
    new = _pages(client, ["/orgs", "/orgs?pageSize=1"])
    assert [json.loads(body)["count"] for body in new] == [2, 2]
    _old_path(monkeypatch)
    assert new == _pages(client, ["/orgs", "/orgs?pageSize=1"])


def test_members_and_invitations_read_as_rows_are_the_same_bytes(org, owner, monkeypatch):
    """``/users`` reads each account's email and name beside its rows: an active member shows the
    account's, an invitation its own (or the account's email when it has none), as a model shows them."""
    from orgs.models import Membership
    from tests.conftest import add_member, make_user

    add_member(org, make_user(name="Active One"))
    for invited_email, invited_name in (("own@example.com", "Own Name"), ("", "")):
        Membership.all_orgs.create(
            organization=org,
            user=make_user(name="Account Name"),
            role="member",
            status=Membership.Status.INVITED,
            invited_email=invited_email,
            invited_name=invited_name,
        )
    client = client_for(owner)
    new = _pages(client, ["/users", "/users?status=invited", "/users?search=own"])
    results = json.loads(new[1])["results"]
    assert sorted((row["email"] == "own@example.com", row["name"]) for row in results) == [
        (False, ""),
        (True, "Own Name"),
    ]
    _old_path(monkeypatch)
    assert new == _pages(client, ["/users", "/users?status=invited", "/users?search=own"])

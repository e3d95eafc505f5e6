"""A page's rows written as JSON by PostgreSQL (core.row_json) are DRF's bytes for the values the two
could write differently: escapes, line separators, characters beyond ASCII, empty and null text,
times with and without a fraction (and before the year 1000), credits of every sign and size,
counts. Each page is compared with the generic path (DRF's walk of model instances, the library's
camelCase), and shown to have been written by PostgreSQL."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

import pytest
from django.db.models import JSONField, Value

from billing.models import LedgerEntry
from chat.models import Artifact, ChatSession
from chat.serializers import SessionSerializer
from core import row_json
from core.row_json import JsonRow
from core.serializers import PlainReadModelSerializer
from orgs.models import Membership
from tasks.models import Project, Task
from tests.conftest import client_for, make_org, make_specialist, make_workspace_file
from tests.core.test_list_rendering import _old_path
from tests.core.test_query_counts import _webhook
from webhooks.models import Delivery, Event, Webhook
from workspaces.models import Workspace, WorkspaceFile

pytestmark = pytest.mark.django_db

TRICKY = [
    'a quote " and a backslash \\',
    "a line\nbreak, a\ttab, a\rreturn, a\x08backspace, a\x0cform feed",
    "controls \x01 \x1f and delete \x7f",
    "separators \u2028 and \u2029",
    "é ü 中文 😀 \U0010ffff",
    "</script><!-- 'single' %s %% {} $1",
    "",
]
TIMES = [
    datetime.datetime(2026, 12, 7, 21, 12, 36, tzinfo=datetime.UTC),
    datetime.datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=datetime.UTC),
    datetime.datetime(2026, 6, 30, 23, 59, 59, 120000, tzinfo=datetime.UTC),
    datetime.datetime(999, 1, 1, 0, 0, 0, 999999, tzinfo=datetime.UTC),
]
# A webhook's events as PostgreSQL writes them (strings, nulls, none) and as only Python does (a
# number, an object, a string that is no list): such a row is read again and written by Python.
EVENT_LISTS = [
    ["alert.raised", "turn.failed"],
    [],
    None,
    [None, TRICKY[0], TRICKY[3]],
    [1, {"b": 2, "a": [1.0]}],
    "text",
]
CREDITS = [Decimal("0"), Decimal("-1.5"), Decimal("0.000001"), Decimal("-99999999999999.999999"), Decimal("12.340000")]


@pytest.fixture
def tricky_rows(org, owner):
    specialist = make_specialist(org, name="S")
    workspace = Workspace.all_orgs.create(organization=org, name=TRICKY[0], created_by=owner)
    project = Project.all_orgs.create(organization=org, name=TRICKY[1], workspace=workspace, created_by=owner)
    for n, text in enumerate(TRICKY):
        session = ChatSession.all_orgs.create(
            organization=org, specialist=specialist, created_by=owner, title=text, workspace=workspace
        )
        ChatSession.all_orgs.filter(pk=session.pk).update(
            created_at=TIMES[n % len(TIMES)], updated_at=TIMES[-1 - n % 4]
        )
        Artifact.all_orgs.create(organization=org, workspace=workspace, title=text, content=text, session=session)
        Task.all_orgs.create(
            organization=org,
            project=project,
            title=text or "t",
            description=text,
            result=text,
            error=text[::-1],
            due_date=None if n % 2 else TIMES[n % len(TIMES)].date(),
            created_by=owner,
        )
        made = make_workspace_file(workspace, uploaded_by=owner if n % 3 else None, filename=text, text=text)
        WorkspaceFile.all_orgs.filter(pk=made.pk).update(size=2**53 + n if n % 2 else n)
        LedgerEntry.all_orgs.create(
            organization=org,
            kind="adjustment",
            amount=CREDITS[n % len(CREDITS)],
            balance_after=abs(CREDITS[-1 - n % len(CREDITS)]),
            model=text if n % 2 else "",
            input_tokens=2**31 - 1 if n == 1 else n,
            description=text,
        )
    webhook = _webhook(org, created_by=owner)
    for n, text in enumerate(TRICKY):
        event = Event.all_orgs.create(organization=org, type=text[:40] or "ping", body="{}")
        Delivery.all_orgs.create(
            organization=org,
            webhook=webhook,
            event=event,
            due_at=TIMES[n % len(TIMES)],
            error=text,
            response_status=None if n % 2 else 500,
            delivered_at=None if n % 2 else TIMES[n % len(TIMES)],
        )
    for events in EVENT_LISTS:
        listed = _webhook(org, created_by=owner)
        stored = Value(None, JSONField()) if events is None else events  # JSON's null, not SQL's
        Webhook.all_orgs.filter(pk=listed.pk).update(events=stored, last_status="failed" if events else "")
    for n, text in enumerate(TRICKY):  # the caller's role in each: owner, admin, member; invited: not listed
        other = make_org(name=text or "o")
        status = Membership.Status.ACTIVE if n % 4 != 3 else Membership.Status.INVITED
        Membership.all_orgs.create(
            organization=other, user=owner, role=["owner", "admin", "member"][n % 3], status=status
        )
    Workspace.all_orgs.create(organization=org, name="", created_by=owner)  # counts of 0
    Project.all_orgs.create(organization=org, name=TRICKY[4], workspace=workspace, created_by=owner)
    return {"workspaces": workspace, "projects": project, "webhooks": webhook}


def _made(cls: type) -> list[type]:
    return [cls, *(made for sub in cls.__subclasses__() for made in _made(sub))]


@pytest.fixture
def rows_made_again():
    """Every serializer's row expression made again in this test (with the writers it patches) and
    again after it: a test's writers never stay in the class caches."""

    def forget() -> None:
        for serializer in _made(PlainReadModelSerializer):
            if "_row_json_found" in serializer.__dict__ and not serializer.__module__.startswith("tests."):
                delattr(serializer, "_row_json_found")

    forget()
    yield
    forget()


def _urls(parents) -> list[str]:
    workspace, webhook = parents["workspaces"].pk, parents["webhooks"].pk
    pages = [
        "/api/chat/sessions",
        f"/workspaces/{workspace}/threads",
        f"/workspaces/{workspace}/artifacts",
        f"/workspaces/{workspace}/files",
        "/billing/credits/usage",
        "/projects",
        "/tasks",
        "/workspaces",
        f"/orgs/{parents['webhooks'].organization_id}/webhooks/{webhook}/deliveries",
        f"/orgs/{parents['webhooks'].organization_id}/webhooks",
        "/orgs",
    ]
    return [page + query for page in pages for query in ("?pageSize=100", "?pageSize=1&page=2")]


def _written_pages(client, urls: list[str], monkeypatch, **headers) -> list[bytes]:
    """Each page's bytes, each page required to have been written by PostgreSQL (a webhooks page
    of every kind of events both by PostgreSQL and, for the rows it would write otherwise, by Python)."""
    kinds: list[type] = []
    represent = PlainReadModelSerializer.to_representation

    def recorded(self, row):
        kinds.append(type(row))
        return represent(self, row)

    with monkeypatch.context() as patched:
        patched.setattr(PlainReadModelSerializer, "to_representation", recorded)
        pages = []
        for url in urls:
            kinds.clear()
            answer = client.get(url, **headers)
            assert answer.status_code == 200, (url, answer.content)
            if url.endswith("/webhooks?pageSize=100"):
                assert JsonRow in kinds, url
                assert sum(kind is not JsonRow for kind in kinds) == 2, url  # a number and an object; a text
            elif "/webhooks?" not in url:
                assert set(kinds) == {JsonRow}, url
            pages.append(answer.content)
    return pages


def test_values_postgresql_could_write_otherwise_are_the_bytes_drf_writes(org, owner, tricky_rows, monkeypatch):
    client, urls = client_for(owner, org), _urls(tricky_rows)
    new = _written_pages(client, urls, monkeypatch)
    _old_path(monkeypatch)
    old = [client.get(url).content for url in urls]
    for url, written, generic in zip(urls, new, old, strict=True):
        assert written == generic, url
    orgs = {row["name"]: row["role"] for row in json.loads(new[urls.index("/orgs?pageSize=100")])["results"]}
    assert orgs == {
        **{text or "o": ["owner", "admin", "member"][n % 3] for n, text in enumerate(TRICKY) if n % 4 != 3},
        org.name: "owner",
    }
    sessions = json.loads(new[0])["results"]
    assert sorted(row["title"] for row in sessions) == sorted(TRICKY)
    assert {row["createdAt"] for row in sessions} >= {"2026-12-07T21:12:36Z", "0999-01-01T00:00:00.999999Z"}
    assert b"\\u2028" in new[0]  # escaped in the body, as DRF does
    assert "\u2028".encode() not in new[0]


def test_a_pretty_printed_page_is_the_bytes_drf_writes(org, owner, tricky_rows, monkeypatch):
    client, urls = (
        client_for(owner, org),
        [url for url in _urls(tricky_rows) if url.endswith(("/sessions?pageSize=100", "/webhooks?pageSize=100"))],
    )
    assert len(urls) == 2
    accept = {"HTTP_ACCEPT": "application/json; indent=2"}
    new = _written_pages(client, urls, monkeypatch, **accept)
    _old_path(monkeypatch)
    assert new == [client.get(url, **accept).content for url in urls]
    assert new[0].startswith(b'{\n  "count": ')


def test_the_comparison_fires_on_a_time_written_otherwise(org, owner, tricky_rows, monkeypatch, rows_made_again):
    """A time always written with its fraction (``.000000``) is not what DRF writes: the pages differ."""
    client, urls = client_for(owner, org), _urls(tricky_rows)[:1]
    monkeypatch.setattr(
        row_json,
        "_utc_time",
        lambda column: (
            f"CASE WHEN {column} IS NULL THEN 'null' ELSE '\"' || "
            f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || 'Z\"' END"
        ),
    )
    new = _written_pages(client, urls, monkeypatch)
    _old_path(monkeypatch)
    assert new != [client.get(url).content for url in urls]


def test_a_serializer_with_a_method_or_a_json_column_keeps_the_tuple_path():
    from billing.serializers import AlertSerializer
    from specialists.serializers import SpecialistSerializer

    assert SpecialistSerializer._row_json() is None  # a JSON list, a float and a method field
    assert AlertSerializer._row_json() is None  # a method field and a relation
    assert SessionSerializer._row_json() is not None


def test_a_page_with_a_row_postgresql_cannot_write_is_written_by_python(
    org, owner, tricky_rows, monkeypatch, rows_made_again
):
    """A value PostgreSQL writes as no text (an infinite time, say: here a title made so) leaves the
    whole page to Python, the same bytes."""
    text_column = row_json._text_column
    monkeypatch.setattr(
        row_json,
        "_text_column",
        lambda column: f"CASE WHEN {column} = 'no text' THEN NULL ELSE {text_column(column)} END",
    )
    ChatSession.all_orgs.filter(organization=org).update(title="no text")
    kinds: list[type] = []
    represent = PlainReadModelSerializer.to_representation

    def recorded(self, row):
        kinds.append(type(row))
        return represent(self, row)

    client = client_for(owner, org)
    with monkeypatch.context() as patched:
        patched.setattr(PlainReadModelSerializer, "to_representation", recorded)
        written = client.get("/api/chat/sessions?pageSize=100").content
    assert kinds
    assert JsonRow not in kinds
    _old_path(monkeypatch)
    assert written == client.get("/api/chat/sessions?pageSize=100").content

"""What a key's turns cost, as the API shows it: ``apiKeyId`` on ledger entries and its filter, the
usage summary grouped by ``apiKey`` (a user's turns under null, rows summing to the totals, the CSV
too) and ``spentThisPeriod`` on the key's representation (one query for a page of keys)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from billing import services as billing
from billing.models import LedgerEntry, ModelRate
from orgs import api_keys
from orgs.context import OrgContext
from orgs.models import ApiKey, Membership, Role
from tests.conftest import assert_problem, client_for, make_specialist

pytestmark = pytest.mark.django_db

LEDGER = "/billing/credits/usage"
SUMMARY = "/billing/usage/summary"
JUNE = {"from": "2026-06-01", "to": "2026-07-01"}


def new_key(org, *, name: str = "server", cap: Decimal | None = None) -> ApiKey:
    owner = Membership.all_orgs.get(organization=org, role=Role.OWNER)
    context = OrgContext(org=org, membership=owner, is_staff=False)
    return api_keys.create_api_key(context=context, name=name, monthly_credit_limit=cap).key


def record(clock, org, *, at: datetime, amount: str, **fields) -> LedgerEntry:
    clock["at"] = at
    return LedgerEntry.all_orgs.create(
        organization=org, kind="usage", amount=Decimal(amount), balance_after=Decimal(1), **fields
    )


@pytest.fixture
def usage(clock, org, member):
    """June: two keys' turns, a member's, and a grant (never counted); May: a key's turn."""
    first, second = new_key(org, name="first"), new_key(org, name="second")
    record(clock, org, at=datetime(2026, 5, 30, tzinfo=UTC), amount="-100", api_key_id=first.pk)
    record(clock, org, at=datetime(2026, 6, 2, tzinfo=UTC), amount="-1.500001", api_key_id=first.pk, input_tokens=7)
    record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), amount="-2.25", api_key_id=first.pk, output_tokens=3)
    record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), amount="-0.000001", api_key_id=second.pk)
    record(clock, org, at=datetime(2026, 6, 4, tzinfo=UTC), amount="-5", user_id=member.pk)
    billing.grant_credits(org=org, amount=Decimal(10), reason="top-up")
    clock["at"] = datetime(2026, 6, 15, tzinfo=UTC)
    return first, second


def test_the_summary_groups_by_key_with_a_null_row_for_users_turns(usage, owner):
    first, second = usage
    body = client_for(owner).get(SUMMARY, {**JUNE, "groupBy": "apiKey"}).json()
    assert body["rows"] == [
        {"apiKeyId": None, "credits": "5.000000", "calls": 1, "inputTokens": 0, "outputTokens": 0},
        {"apiKeyId": str(first.pk), "credits": "3.750001", "calls": 2, "inputTokens": 7, "outputTokens": 3},
        {"apiKeyId": str(second.pk), "credits": "0.000001", "calls": 1, "inputTokens": 0, "outputTokens": 0},
    ]
    assert body["totals"] == {"credits": "8.750002", "calls": 4, "inputTokens": 7, "outputTokens": 3}
    assert sum(Decimal(row["credits"]) for row in body["rows"]) == Decimal(body["totals"]["credits"])
    # with the member: a key's turns are no member's (null), the member's turn no key's (null)
    both = client_for(owner).get(SUMMARY, {**JUNE, "groupBy": "apiKey,member"}).json()["rows"]
    assert {(row["apiKeyId"], row["userId"]) for row in both} == {
        (None, str(Membership.all_orgs.get(role=Role.MEMBER).user_id)),
        (str(first.pk), None),
        (str(second.pk), None),
    }
    # the CSV: the rows under their JSON names, no totals line
    response = client_for(owner).get(SUMMARY, {**JUNE, "groupBy": "apiKey"}, HTTP_ACCEPT="text/csv")
    header, *rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert header == ["apiKeyId", "credits", "calls", "inputTokens", "outputTokens"]
    assert rows == [
        ["", "5.000000", "1", "0", "0"],
        [str(first.pk), "3.750001", "2", "7", "3"],
        [str(second.pk), "0.000001", "1", "0", "0"],
    ]


def test_a_member_sees_none_of_the_keys_usage(usage, member):
    body = client_for(member).get(SUMMARY, {**JUNE, "groupBy": "apiKey"}).json()
    assert body["rows"] == [{"apiKeyId": None, "credits": "5.000000", "calls": 1, "inputTokens": 0, "outputTokens": 0}]


def test_the_ledger_shows_and_filters_by_the_key(usage, owner, member):
    first, second = usage
    client = client_for(owner)
    entries = client.get(LEDGER, {"apiKeyId": str(first.pk)}).json()["results"]
    assert [(entry["amount"], entry["apiKeyId"], entry["userId"]) for entry in entries] == [
        ("-2.250000", str(first.pk), None),
        ("-1.500001", str(first.pk), None),
        ("-100.000000", str(first.pk), None),
    ]
    assert client.get(LEDGER, {"apiKeyId": str(uuid.uuid4())}).json()["count"] == 0
    mine = client.get(LEDGER, {"userId": str(member.pk)}).json()["results"]
    assert [(entry["apiKeyId"], entry["userId"]) for entry in mine] == [(None, str(member.pk))]
    assert_problem(client.get(LEDGER, {"apiKeyId": "nope"}), 400, "validation_error")
    # the CSV names the key in the JSON field's column
    response = client.get(LEDGER, {"apiKeyId": str(second.pk)}, HTTP_ACCEPT="text/csv")
    header, *rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    assert rows[0][header.index("apiKeyId")] == str(second.pk)
    assert rows[0][header.index("userId")] == ""


def test_a_key_shows_what_its_turns_cost_this_period(usage, org, owner):
    first, second = usage
    new_key(org, name="unused")
    client = client_for(owner)
    listed = client.get(f"/orgs/{org.pk}/api-keys").json()["results"]
    assert {row["name"]: row["spentThisPeriod"] for row in listed} == {
        "first": "3.750001",  # May's 100 are last period's
        "second": "0.000001",
        "unused": "0.000000",
    }
    shown = client.get(f"/orgs/{org.pk}/api-keys/{first.pk}").json()
    assert shown["spentThisPeriod"] == "3.750001"
    created = client.post(f"/orgs/{org.pk}/api-keys", {"name": "new"}, format="json").json()
    assert created["spentThisPeriod"] == "0.000000"
    assert list(shown) == [  # the contract's fields, in its order
        "id",
        "name",
        "prefix",
        "role",
        "specialistIds",
        "monthlyCreditLimit",
        "spentThisPeriod",
        "expiresAt",
        "createdBy",
        "createdAt",
        "lastUsedAt",
        "revokedAt",
    ]


def test_a_page_of_keys_reads_their_spend_in_one_query(clock, org, owner):
    client = client_for(owner)
    counts = []
    for keys in (2, 6):
        while ApiKey.all_orgs.filter(organization=org).count() < keys:
            key = new_key(org, name=f"k{keys}")
            record(clock, org, at=clock["at"], amount="-1", api_key_id=key.pk)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/orgs/{org.pk}/api-keys").json()["count"] == keys
        ledger = [q["sql"] for q in queries.captured_queries if "billing_ledgerentry" in q["sql"]]
        assert len(ledger) == 1
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1]


def test_a_settled_key_call_reaches_the_ledger_and_the_keys_spend(clock, org, owner, member):
    """Through the services: a key's call settled is a usage entry with the key and no user, shown on
    the key and under the key in the summary, and in no member's spend."""
    ModelRate.objects.create(
        model="usage-model",
        provider="openai",
        display_name="Usage",
        input_credits_per_million=Decimal("1000"),
        output_credits_per_million=Decimal("2000"),
        context_window=8000,
        max_output_tokens=1000,
    )
    key = new_key(org, cap=Decimal(50))
    hold = billing.reserve(
        org=org, model="usage-model", input_tokens=100, max_output_tokens=100, api_key_id=key.pk, key_limit=Decimal(50)
    )
    billing.settle(reservation_id=hold.reservation_id, input_tokens=1000, output_tokens=500)  # 1 + 1 = 2 credits
    client = client_for(owner)
    assert client.get(f"/orgs/{org.pk}/api-keys/{key.pk}").json()["spentThisPeriod"] == "2.000000"
    (entry,) = client.get(LEDGER, {"apiKeyId": str(key.pk)}).json()["results"]
    assert (entry["amount"], entry["userId"], entry["apiKeyId"]) == ("-2.000000", None, str(key.pk))
    members = client.get("/users").json()["results"]
    assert {row["spentThisPeriod"] for row in members} == {"0.000000"}


def key_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def new_secret(org, *, role: str = Role.MEMBER, specialist_ids=None) -> tuple[str, ApiKey]:
    owner = Membership.all_orgs.get(organization=org, role=Role.OWNER)
    context = OrgContext(org=org, membership=owner, is_staff=False)
    created = api_keys.create_api_key(context=context, name="caller", role=role, specialist_ids=specialist_ids)
    return created.secret, created.key


def test_a_member_key_reads_only_its_own_usage(usage, org):
    """A ``member`` key is a member: its own turns' usage (and the org's grants), nobody else's."""
    secret, key = new_secret(org)
    LedgerEntry.all_orgs.create(
        organization=org, kind="usage", amount=Decimal("-0.5"), balance_after=Decimal(1), api_key_id=key.pk
    )
    client = key_client(secret)
    kinds = [(row["kind"], row["apiKeyId"]) for row in client.get(LEDGER).json()["results"]]
    assert sorted(kinds, key=str) == sorted([("usage", str(key.pk)), ("grant", None), ("grant", None)], key=str)
    body = client.get(SUMMARY, {**JUNE, "groupBy": "apiKey"}).json()
    assert body["rows"] == [
        {"apiKeyId": str(key.pk), "credits": "0.500000", "calls": 1, "inputTokens": 0, "outputTokens": 0}
    ]
    # an admin key sees everyone's
    admin_secret, _ = new_secret(org, role=Role.ADMIN)
    assert key_client(admin_secret).get(SUMMARY, {**JUNE, "groupBy": "apiKey"}).json()["totals"]["calls"] == 5


def test_a_key_limited_to_some_specialists_sees_only_their_usage(clock, org):
    mine, theirs = make_specialist(org, name="Mine"), make_specialist(org, name="Theirs")
    at = datetime(2026, 6, 3, tzinfo=UTC)
    record(clock, org, at=at, amount="-1", specialist_id=mine.pk)
    record(clock, org, at=at, amount="-2", specialist_id=theirs.pk)
    record(clock, org, at=at, amount="-4")  # no specialist (the wizard's)
    secret, _ = new_secret(org, role=Role.ADMIN, specialist_ids=[mine.pk])
    client = key_client(secret)
    usage = [row for row in client.get(LEDGER).json()["results"] if row["kind"] == "usage"]
    assert [row["specialistId"] for row in usage] == [str(mine.pk)]
    body = client.get(SUMMARY, {**JUNE, "groupBy": "specialist"}).json()
    assert [(row["specialistId"], row["credits"]) for row in body["rows"]] == [(str(mine.pk), "1.000000")]

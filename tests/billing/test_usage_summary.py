"""GET /billing/usage/summary: exact sums, every grouping, per-person privacy, tenancy, bad input."""

from __future__ import annotations

import itertools
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import LedgerEntry
from tests.conftest import add_member, assert_problem, client_for

pytestmark = pytest.mark.django_db

DIMENSIONS = ("day", "member", "specialist", "model", "apiKey")
ROW_KEY = {"day": "day", "member": "userId", "specialist": "specialistId", "model": "model", "apiKey": "apiKeyId"}
SUMMARY = "/billing/usage/summary"


def record(clock, org, *, at: datetime, kind: str = "usage", amount: Decimal, **fields) -> LedgerEntry:
    clock["at"] = at
    return LedgerEntry.all_orgs.create(organization=org, kind=kind, amount=amount, balance_after=Decimal(1), **fields)


def random_usage(clock, org, users, *, count: int, seed: int) -> list[LedgerEntry]:
    """Usage spread over three days of June 2026, members, API keys (a key's turn has no member) and
    neither, specialists and models, with random amounts of 6 decimals; a grant too (never counted)."""
    rng = random.Random(seed)
    payers = [*({"user_id": user.pk} for user in users), *({"api_key_id": uuid.uuid4()} for _ in range(2)), {}]
    specialists = [uuid.uuid4(), uuid.uuid4(), None]
    models = ["gpt-4o-mini", "claude-3-5-haiku", ""]
    entries = []
    for _ in range(count):
        at = datetime(2026, 6, rng.choice([3, 4, 5]), rng.randrange(24), rng.randrange(60), tzinfo=UTC)
        entries.append(
            record(
                clock,
                org,
                at=at,
                amount=-Decimal(rng.randrange(1, 10**9)) / Decimal(10**6),
                **rng.choice(payers),
                specialist_id=rng.choice(specialists),
                model=rng.choice(models),
                input_tokens=rng.randrange(5000),
                output_tokens=rng.randrange(2000),
            )
        )
    record(clock, org, at=datetime(2026, 6, 4, tzinfo=UTC), kind="grant", amount=Decimal("500"))
    return entries


def key_of(entry: LedgerEntry, dimension: str) -> str | None:
    value = {
        "day": entry.created_at.astimezone(UTC).date().isoformat(),
        "member": entry.user_id,
        "specialist": entry.specialist_id,
        "model": entry.model or None,
        "apiKey": entry.api_key_id,
    }[dimension]
    return None if value is None else str(value)


def expected(entries, group_by) -> dict[tuple, dict]:
    """The groups computed the slow way, in Python, from the entries themselves."""
    groups: dict[tuple, dict] = defaultdict(lambda: {"credits": Decimal(0), "calls": 0, "in": 0, "out": 0})
    for entry in entries:
        group = groups[tuple(key_of(entry, dimension) for dimension in group_by)]
        group["credits"] -= entry.amount
        group["calls"] += 1
        group["in"] += entry.input_tokens
        group["out"] += entry.output_tokens
    return groups


JUNE = {"from": "2026-06-01", "to": "2026-07-01"}


@pytest.fixture
def team(org):
    return [add_member(org), add_member(org)]


@pytest.mark.parametrize(
    "group_by",
    [(dimension,) for dimension in DIMENSIONS] + list(itertools.permutations(DIMENSIONS, 2)),
    ids=",".join,
)
def test_every_grouping_sums_exactly_to_the_totals(clock, org, owner, team, group_by):
    entries = random_usage(clock, org, team, count=60, seed=hash(group_by) % 1000)
    client = client_for(owner)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(SUMMARY, {**JUNE, "groupBy": ",".join(group_by)})
    assert response.status_code == 200, response.content
    body = response.json()
    summaries = [q["sql"] for q in queries.captured_queries if "billing_ledgerentry" in q["sql"]]
    assert len(summaries) == 1, summaries  # one grouped query
    assert "SUM(" in summaries[0]

    assert body["groupBy"] == list(group_by)
    assert (body["from"], body["to"]) == ("2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z")
    want = expected(entries, group_by)
    got = {tuple(row[ROW_KEY[dimension]] for dimension in group_by): row for row in body["rows"]}
    assert set(got) == set(want)  # no row for a group without usage, a NULL key for usage without a value
    for key, row in got.items():
        assert set(row) == {*(ROW_KEY[d] for d in group_by), "credits", "calls", "inputTokens", "outputTokens"}
        assert row["credits"] == f"{want[key]['credits']:.6f}"
        assert (row["calls"], row["inputTokens"], row["outputTokens"]) == (
            want[key]["calls"],
            want[key]["in"],
            want[key]["out"],
        )
    total = -sum(entry.amount for entry in entries)
    assert body["totals"] == {
        "credits": f"{total:.6f}",
        "calls": len(entries),
        "inputTokens": sum(entry.input_tokens for entry in entries),
        "outputTokens": sum(entry.output_tokens for entry in entries),
    }
    assert sum(Decimal(row["credits"]) for row in body["rows"]) == Decimal(body["totals"]["credits"])

    if "day" in group_by:  # by day ascending, then by credits descending
        order = [(row["day"], -Decimal(row["credits"])) for row in body["rows"]]
    else:
        order = [-Decimal(row["credits"]) for row in body["rows"]]
    assert order == sorted(order)


def test_days_are_utc_and_the_bounds_are_from_inclusive_to_exclusive(clock, org, owner):
    record(clock, org, at=datetime(2026, 6, 3, 23, 59, 59, tzinfo=UTC), amount=Decimal("-1"))
    record(clock, org, at=datetime(2026, 6, 4, 0, 0, tzinfo=UTC), amount=Decimal("-2"))
    record(clock, org, at=datetime(2026, 6, 5, 0, 0, tzinfo=UTC), amount=Decimal("-4"))
    # 02:00 in UTC+3 is still June 3rd 23:00 in UTC
    body = client_for(owner).get(SUMMARY, {"from": "2026-06-04T02:00:00+03:00", "to": "2026-06-05", "groupBy": "day"})
    assert body.json()["rows"] == [
        {"day": "2026-06-03", "credits": "1.000000", "calls": 1, "inputTokens": 0, "outputTokens": 0},
        {"day": "2026-06-04", "credits": "2.000000", "calls": 1, "inputTokens": 0, "outputTokens": 0},
    ]
    assert body.json()["from"] == "2026-06-03T23:00:00Z"


def test_the_default_range_is_this_period(clock, org, owner):
    record(clock, org, at=datetime(2026, 5, 31, 23, 0, tzinfo=UTC), amount=Decimal("-7"))
    record(clock, org, at=datetime(2026, 6, 2, tzinfo=UTC), amount=Decimal("-0.5"))
    clock["at"] = datetime(2026, 6, 15, 12, tzinfo=UTC)
    body = client_for(owner).get(SUMMARY, {"groupBy": "model"}).json()
    assert (body["from"], body["to"]) == ("2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z")
    assert body["totals"]["credits"] == "0.500000"
    assert body["rows"] == [{"model": None, "credits": "0.500000", "calls": 1, "inputTokens": 0, "outputTokens": 0}]


def test_a_member_sees_only_their_own_usage_and_admins_see_everyones(clock, org, owner, admin_user, member):
    other = add_member(org)
    record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), amount=Decimal("-1.25"), user_id=member.pk)
    record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), amount=Decimal("-3"), user_id=other.pk)
    record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), amount=Decimal("-5"), user_id=None)  # a key's turn

    mine = client_for(member).get(SUMMARY, {**JUNE, "groupBy": "member"}).json()
    assert mine["rows"] == [
        {"userId": str(member.pk), "credits": "1.250000", "calls": 1, "inputTokens": 0, "outputTokens": 0}
    ]
    assert mine["totals"]["credits"] == "1.250000"
    for viewer in (owner, admin_user):
        body = client_for(viewer).get(SUMMARY, {**JUNE, "groupBy": "member"}).json()
        assert [(row["userId"], row["credits"]) for row in body["rows"]] == [
            (None, "5.000000"),
            (str(other.pk), "3.000000"),
            (str(member.pk), "1.250000"),
        ]
        assert body["totals"]["credits"] == "9.250000"


def test_another_orgs_usage_is_never_counted(clock, org, other_org, owner):
    record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), amount=Decimal("-2"), model="gpt-4o-mini")
    record(clock, other_org, at=datetime(2026, 6, 3, tzinfo=UTC), amount=Decimal("-40"), model="gpt-4o-mini")
    body = client_for(owner).get(SUMMARY, {**JUNE, "groupBy": "model"}).json()
    assert body["rows"] == [
        {"model": "gpt-4o-mini", "credits": "2.000000", "calls": 1, "inputTokens": 0, "outputTokens": 0}
    ]
    assert_problem(client_for(owner, other_org).get(SUMMARY, {**JUNE, "groupBy": "model"}), 403, "not_a_member")


@pytest.mark.parametrize("group_by", ["day,model", "apiKey"])
def test_no_usage_is_zero_totals_and_no_rows(clock, org, owner, group_by):
    record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), kind="grant", amount=Decimal("10"))
    body = client_for(owner).get(SUMMARY, {**JUNE, "groupBy": group_by}).json()
    assert body["rows"] == []
    assert body["totals"] == {"credits": "0.000000", "calls": 0, "inputTokens": 0, "outputTokens": 0}


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"groupBy": "week"}, {"groupBy"}),
        ({"groupBy": "day,model,member"}, {"groupBy"}),
        ({"groupBy": "day,day"}, {"groupBy"}),
        ({"groupBy": ","}, {"groupBy"}),
        ({}, {"groupBy"}),
        ({"groupBy": "day", "from": "2025-01-01", "to": "2026-02-06"}, {"from", "to"}),
        ({"groupBy": "day", "from": "2026-06-05", "to": "2026-06-05"}, {"to"}),
        ({"groupBy": "day", "from": "yesterday"}, {"from"}),
        ({"groupBy": "day", "to": "2026-13-01"}, {"to"}),
        ({"groupBy": "day", "from": "2020-01-01"}, {"from", "to"}),  # to defaults to this period's end
    ],
)
def test_bad_parameters_are_a_validation_error_naming_them(clock, owner, params, fields):
    body = assert_problem(client_for(owner).get(SUMMARY, params), 400, "validation_error")
    assert set(body["errors"]) == fields, body


def test_four_hundred_days_are_allowed(clock, owner):
    start = datetime(2025, 6, 1, tzinfo=UTC)
    end = start + timedelta(days=400)
    response = client_for(owner).get(SUMMARY, {"groupBy": "day", "from": start.isoformat(), "to": end.isoformat()})
    assert response.status_code == 200, response.content


def test_needs_authentication(anon, org):
    assert_problem(anon.get(SUMMARY, {"groupBy": "day"}), 401, "not_authenticated")

"""The admin's organization page: the org's API keys, webhooks and last deliveries (its own only,
never a secret, a bounded number of queries however many it has), and its usage read from the
counted days (``billing.usage_days``) as the ledger has it."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction

from billing.models import DailyUsage, LedgerEntry
from billing.services.ledger import locked_account, write_ledger_entry
from billing.usage_days import COUNTED_AFTER, usage_by_day
from orgs.api_keys import create_api_key, revoke_api_key
from orgs.models import ApiKey, Organization
from tests.conftest import make_org, make_specialist
from tests.webhooks.conftest import admin_context
from webhooks import services
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


def _page(client, org: Organization) -> str:
    response = client.get(f"/admin/orgs/organization/{org.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def _use(org: Organization, amount: str, model: str = "gpt-4o-mini") -> LedgerEntry:
    with transaction.atomic():
        return write_ledger_entry(locked_account(org), kind="usage", amount=-Decimal(amount), model=model)


def _equip(org: Organization, label: str, *, count: int = 1) -> dict[str, list[str]]:
    """``count`` API keys, webhooks (with a ping's delivery each) of ``org``; their secrets."""
    secrets: dict[str, list[str]] = {"keys": [], "hooks": []}
    context = admin_context(org)
    for n in range(count):
        specialist = make_specialist(org)
        key = create_api_key(context=context, name=f"{label} key {n}", specialist_ids=[specialist.pk])
        secrets["keys"] += [key.secret, key.key.secret_hash]
        url = f"https://ops:{label}-password@{label}-{n}.example.com/in?token={label}-token"
        hook = services.create_webhook(context=context, url=url, events=["turn.completed"])
        services.send_ping(context=context, webhook=hook.webhook)
        secrets["hooks"] += [hook.secret, hook.webhook.secret_encrypted]
    Delivery.all_orgs.filter(organization=org).update(status="failed", response_status=503)
    return secrets


@pytest.fixture
def hooks_allowed(settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True  # no name lookup for the example hosts


def test_the_page_shows_its_own_keys_webhooks_and_deliveries_and_no_secret(operator, org, hooks_allowed):
    mine = _equip(org, "acme")
    other = make_org(name="Other Corp")
    theirs = _equip(other, "other")
    revoked = create_api_key(context=admin_context(org), name="acme old key")
    revoke_api_key(context=admin_context(org), key=revoked.key)
    page = _page(operator, org)
    key = ApiKey.all_orgs.get(organization=org, name="acme key 0")
    assert f'href="/admin/orgs/apikey/{key.pk}/change/">acme key 0</a>' in page
    assert f"lc_{key.prefix}_…" in page
    assert "acme old key" in page  # revoked keys too, with when
    assert f"?organization__id__exact={org.pk}" in page  # the keys' list and the delivery log of this org
    row = re.search(r"acme key 0</a></td>(.*?)</tr>", page, re.S)
    assert row is not None
    assert "<td>member</td><td>1</td>" in row.group(1)  # role, one specialist allowed
    assert "https://acme-0.example.com/in?token=***" in page  # the URL without its credentials
    assert "<td>turn.completed</td><td>active</td>" in page
    delivery = Delivery.all_orgs.get(organization=org)
    assert f'href="/admin/webhooks/delivery/{delivery.pk}/change/">ping</a>' in page
    assert "<td>failed</td><td>1</td><td>503</td>" in page
    for planted in [*mine["keys"], *mine["hooks"], "acme-password", "acme-token"]:
        assert planted not in page
    for planted in [*theirs["keys"], *theirs["hooks"], "other key", "other-0.example.com", str(other.pk)]:
        assert planted not in page  # nothing of another org's


def test_the_page_asks_a_bounded_number_of_queries(operator, org, hooks_allowed, django_assert_max_num_queries):
    _equip(org, "few")
    _use(org, "1")
    _page(operator, org)  # the days counted once
    with django_assert_max_num_queries(60) as few:
        _page(operator, org)
    _equip(org, "many", count=9)
    for _ in range(5):
        _use(org, "1", model="local")
    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        page = _page(operator, org)
    assert page.count("/admin/orgs/apikey/") >= 10
    assert page.count("/admin/webhooks/delivery/") >= 10
    assert not any("secret_hash" in query["sql"] for query in many.captured_queries)  # never read


def test_the_days_that_are_over_are_counted_once_and_equal_the_ledger(operator, org, clock):
    now = clock["at"]
    clock["at"] = now - timedelta(days=3)
    _use(org, "1.5")
    _use(org, "2.25", model="local")
    clock["at"] = now - timedelta(hours=2)
    _use(org, "0.5")
    clock["at"] = now
    _use(org, "0.25")
    first = _page(operator, org)
    counted = DailyUsage.all_orgs.filter(organization=org)
    assert counted.filter(entries__gt=0).count() == 2  # the two models of three days ago
    days = {row.day for row in counted}
    assert len(days) == 29  # every day of the window (since May 17) that is over, once; not today
    assert DailyUsage.all_orgs.get(organization=org, day=(now - timedelta(days=3)).date(), model="local").credits == (
        Decimal("2.25")
    )
    groups = re.findall(r'<g class="day" data-day="([\d-]+)" data-total="([\d.]+)"', first)
    assert groups == [((now - timedelta(days=3)).date().isoformat(), "3.750000"), (now.date().isoformat(), "0.750000")]
    # a second view reads the counts (no count again) and still sums what is open
    _use(org, "1")
    again = _page(operator, org)
    assert DailyUsage.all_orgs.filter(organization=org).count() == counted.count()
    assert re.findall(r'data-day="[\d-]+" data-total="([\d.]+)"', again) == ["3.750000", "1.750000"]


def test_a_day_is_counted_once_it_ended_an_hour_ago(org, clock):
    midnight = clock["at"].replace(hour=0, minute=0, second=0, microsecond=0)
    clock["at"] = midnight - timedelta(minutes=1)
    _use(org, "0.5")  # a settlement a minute before midnight
    yesterday = (midnight - timedelta(days=1)).date()
    early = midnight + COUNTED_AFTER - timedelta(minutes=1)
    assert usage_by_day(org, first=yesterday, now=early) == {yesterday: {"gpt-4o-mini": Decimal("0.5")}}
    assert not DailyUsage.all_orgs.filter(organization=org).exists()  # not over yet: summed from the ledger
    later = midnight + COUNTED_AFTER
    assert usage_by_day(org, first=yesterday, now=later) == {yesterday: {"gpt-4o-mini": Decimal("0.5")}}
    assert DailyUsage.all_orgs.get(organization=org).day == yesterday  # counted, once it is an hour over


def test_the_counts_equal_the_ledgers_sums_a_day_later(org, clock):
    """The same usage, read the next day (yesterday counted now) and as the ledger sums it."""
    now = clock["at"]
    for hours, model in ((2, "a"), (5, "b"), (9, "a"), (30, ""), (50, "b")):
        clock["at"] = now - timedelta(hours=hours)
        _use(org, f"0.{hours}", model=model)
    clock["at"] = now
    before = usage_by_day(org, first=(now - timedelta(days=5)).date(), now=now)
    later = now + timedelta(days=1)
    after = usage_by_day(org, first=(now - timedelta(days=5)).date(), now=later)
    assert before == after
    ledger: dict = {}
    for entry in LedgerEntry.all_orgs.filter(organization=org, kind="usage"):
        models = ledger.setdefault(entry.created_at.date(), {})
        models[entry.model] = models.get(entry.model, Decimal(0)) - entry.amount
    assert after == ledger


def test_the_pages_spend_and_burn_are_the_lists(operator, org, clock):
    now = clock["at"]
    for days, amount in ((8, "10"), (7.01, "0.5"), (6.99, "0.25"), (2, "1"), (0, "0.125")):
        clock["at"] = now - timedelta(days=days)
        _use(org, amount)
    clock["at"] = now
    listed = operator.get("/admin/orgs/organization/").content.decode()
    page = _page(operator, org)
    burn = re.search(r'field-burn_display.*?<div class="readonly">([^<]+)</div>', page, re.S)
    spent = re.search(r'field-spent_display.*?<div class="readonly">([^<]+)</div>', page, re.S)
    assert burn is not None
    assert spent is not None
    assert burn.group(1) == "1.375000 credits"  # the last 7 days to the minute
    assert spent.group(1) == "11.875000 credits"  # mid-June: everything since June 1
    assert '<td class="field-spent_display">11.875000 credits</td>' in listed

"""The back office in a real browser, served by a real server: an operator logs in to the admin, finds
an organization, opens it, grants it credits with the action (its form asks for an amount and a
reason), and sees the new balance and the usage chart on the organization's page."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import transaction
from playwright.sync_api import expect

from accounts.models import User
from billing.models import CreditAccount, LedgerEntry
from billing.services.ledger import locked_account, write_ledger_entry
from orgs.admin_base.display import credits_text
from orgs.models import AuditEntry
from tests.browser.support import chromium, screenshot, watched_page
from tests.conftest import make_org

PASSWORD = "Br0wser-Operator-Passw0rd"


def _operator() -> User:
    """A superuser whose password the server can check: the tests hash with MD5, which the server's
    production hashers do not know, so the hash is PBKDF2's (few rounds: the server rehashes it)."""
    user = User.objects.create_superuser(email=f"ops-{uuid.uuid4().hex[:8]}@leancore.test", password=None)
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    return user


def _use(org, amount: str, model: str) -> None:
    with transaction.atomic():
        write_ledger_entry(locked_account(org), kind="usage", amount=-Decimal(amount), model=model, input_tokens=10)


@pytest.mark.django_db(transaction=True)  # the server reads what the test commits
def test_an_operator_grants_credits_in_the_admin_and_sees_the_balance_and_the_chart(daphne_server, bundled_data):
    operator = _operator()
    org = make_org(name=f"Browser Org {uuid.uuid4().hex[:6]}")
    org.monthly_budget = Decimal(500)
    org.save(update_fields=["monthly_budget"])
    _use(org, "12.5", "gpt-4o-mini")
    _use(org, "7.25", "claude-haiku")
    before = CreditAccount.all_orgs.get(organization=org).balance
    granted = Decimal("250.5")
    expected = credits_text(before + granted)

    # (the ORM stays outside the browser: Playwright's sync API runs an event loop in this thread,
    # where Django refuses to query)
    with chromium() as browser, watched_page(browser) as (page, traffic):
        page.goto(f"{daphne_server.url}/admin/")
        page.locator("#id_username").fill(operator.email)
        page.locator("#id_password").fill(PASSWORD)
        page.locator("#login-form [type=submit]").click()
        expect(page.locator("#site-name")).to_have_text("LeanCore operations")
        expect(page.locator("#logout-form")).to_have_count(1)  # logged in

        # find the organization and open it
        page.locator("a[href='/admin/orgs/organization/']").first.click()
        page.locator("#searchbar").fill(org.name)
        page.locator("#changelist-search [type=submit]").click()
        page.wait_for_url("**/admin/orgs/organization/?q=*")
        row = page.locator("#result_list tbody tr").filter(has_text=org.name)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(credits_text(before))
        row.locator("th a").click()
        expect(page.locator(".field-balance_display")).to_contain_text(credits_text(before))

        # back to the list (the search kept), select it and run the action, whose form asks first
        page.locator(".breadcrumbs a", has_text="Organizations").click()
        row = page.locator("#result_list tbody tr").filter(has_text=org.name)
        expect(row).to_have_count(1)
        row.locator("input.action-select").check()
        page.locator("select[name=action]").select_option("grant_credits")
        page.locator("#changelist-form button[name=index]").click()
        expect(page.locator("#content h1")).to_have_text("Grant credits")
        expect(page.locator("#content")).to_contain_text(org.name)
        page.locator("#id_amount").fill(str(granted))
        page.locator("#id_reason").fill("Goodwill after the outage (browser test)")
        page.locator("input[name=apply]").click()
        expect(page.locator(".messagelist .success")).to_have_text("Grant credits: 1 done.")
        row = page.locator("#result_list tbody tr").filter(has_text=org.name)
        expect(row).to_contain_text(expected)

        # the organization's page: the new balance and the usage chart
        row.locator("th a").click()
        balance = page.locator(".field-balance_display")
        expect(balance).to_contain_text(expected)
        chart = page.locator(".field-usage_chart svg.usage-chart")
        chart.scroll_into_view_if_needed()
        expect(chart).to_be_visible()
        box = chart.bounding_box()  # drawn, not an empty box (it is ~300 px wide in the admin's column)
        assert box is not None
        assert box["width"] > 600, box  # readable: the chart keeps its own width
        assert box["height"] > 100, box
        bars = chart.locator("rect[data-model]")
        assert sorted(bars.evaluate_all("rects => rects.map(r => r.dataset.model)")) == ["claude-haiku", "gpt-4o-mini"]
        assert chart.locator("g.day").count() == 1
        assert chart.locator("g.day").get_attribute("data-total") == "19.750000"
        assert chart.locator("line.budget").get_attribute("data-budget") == "500.000000"
        expect(chart.locator(".period-spend")).to_contain_text(re.compile(r"19\.75 credits of a 500 credit budget"))
        balance.scroll_into_view_if_needed()
        screenshot(page, "admin-organization-after-grant", full_page=True)

    assert not traffic.outside, traffic.outside
    assert not traffic.failed, traffic.failed
    assert not traffic.errors, traffic.errors
    grant = LedgerEntry.all_orgs.get(organization=org, kind=LedgerEntry.Kind.GRANT, user_id=operator.pk)
    assert grant.amount == granted
    assert grant.description == "Goodwill after the outage (browser test)"
    assert CreditAccount.all_orgs.get(organization=org).balance == before + granted
    assert AuditEntry.all_orgs.filter(organization=org, actor=operator, action="grant_credits").count() == 1

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services
from billing.models import BudgetAlert, CircuitEvent, CreditPackage, LedgerEntry, ModelRate
from tests.conftest import assert_problem, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(staff):
    """An operator who may grant credits (``billing.manage_credits``; staff alone may not)."""
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="manage_credits", content_type__app_label="billing"))
    return type(staff).objects.get(pk=staff.pk)


@pytest.fixture
def spent(org):
    """One settled call of 1000 in / 500 out tokens on the bundled gpt-4o-mini rate (15 / 60 per million)."""
    specialist = uuid.uuid4()
    hold = services.reserve(
        org=org,
        model="gpt-4o-mini",
        input_tokens=1000,
        max_output_tokens=500,
        specialist_id=specialist,
        specialist_name="Ada",
    )
    services.settle(reservation_id=hold.reservation_id, input_tokens=1000, output_tokens=500)
    return specialist


def test_balance(member, org, spent):
    body = client_for(member).get("/billing/credits/balance").json()
    assert body["balance"] == "99.955000"  # 1000×15/1e6 + 500×60/1e6 = 0.045
    assert body["reserved"] == "0.000000"
    assert body["available"] == "99.955000"
    assert body["spentThisPeriod"] == "0.045000"
    assert body["monthlyBudget"] is None
    assert body["lowBalanceThreshold"] is None
    assert body["periodStart"].endswith("01T00:00:00Z")
    assert body["periodEnd"].endswith("01T00:00:00Z")


def test_balance_needs_auth_and_org(anon, org, other_org, member):
    assert_problem(anon.get("/billing/credits/balance"), 401, "not_authenticated")
    assert_problem(client_for(member, other_org).get("/billing/credits/balance"), 403, "not_a_member")


def test_usage_ledger_and_filters(clock, admin_user, org, spent, other_org):
    client = client_for(admin_user)  # a member reads only their own usage (tests/billing/test_csv_export.py)
    body = client.get("/billing/credits/usage").json()
    assert body["count"] == 2
    usage, grant = body["results"]
    assert usage["kind"] == "usage"
    assert usage["amount"] == "-0.045000"
    assert usage["balanceAfter"] == "99.955000"
    assert usage["model"] == "gpt-4o-mini"
    assert (usage["inputTokens"], usage["outputTokens"]) == (1000, 500)
    assert usage["specialistId"] == str(spent)
    assert grant["kind"] == "grant"
    assert grant["amount"] == "100.000000"
    assert grant["model"] is None
    assert set(usage) == {
        "id",
        "kind",
        "amount",
        "balanceAfter",
        "model",
        "inputTokens",
        "outputTokens",
        "specialistId",
        "sessionId",
        "userId",
        "apiKeyId",
        "description",
        "createdAt",
    }
    assert usage["apiKeyId"] is None  # a user's turn
    assert client.get("/billing/credits/usage?kind=grant").json()["count"] == 1
    assert client.get(f"/billing/credits/usage?specialistId={spent}").json()["count"] == 1
    assert client.get("/billing/credits/usage?model=gpt-4o").json()["count"] == 0
    today = timezone.now().date()
    assert client.get(f"/billing/credits/usage?from={today.isoformat()}").json()["count"] == 2
    assert client.get(f"/billing/credits/usage?to={today.isoformat()}").json()["count"] == 0
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert client.get(f"/billing/credits/usage?to={tomorrow}").json()["count"] == 2
    assert client.get("/billing/credits/usage?ordering=createdAt").json()["results"][0]["kind"] == "grant"
    assert_problem(client.get("/billing/credits/usage?from=yesterday"), 400, "validation_error")
    assert_problem(client.get("/billing/credits/usage?kind=bribe"), 400, "validation_error")
    assert_problem(client.get("/billing/credits/usage?specialistId=nope"), 400, "validation_error")
    # another org's ledger is invisible
    assert client_for(admin_user).get("/billing/credits/usage", HTTP_X_ORG_ID=str(other_org.pk)).status_code == 403


def test_usage_list_query_count(member, org, django_assert_max_num_queries):
    for _ in range(10):
        services.grant_credits(org=org, amount=Decimal(1), reason="x")
    client = client_for(member)
    with django_assert_max_num_queries(5):
        assert client.get("/billing/credits/usage").json()["count"] == 11


def test_model_rates_and_packages_need_no_org(db, anon):
    from tests.conftest import make_user

    client = client_for(make_user())
    rates = client.get("/billing/model-rates?pageSize=100").json()
    models = [r["model"] for r in rates["results"]]
    assert models == sorted(models)
    assert {"local", "gpt-4o-mini", "claude-sonnet-4-5"} <= set(models)
    local = next(r for r in rates["results"] if r["model"] == "local")
    assert local["provider"] == "local"
    assert Decimal(local["inputCreditsPerMillion"]) > 0
    assert set(local) == {
        "model",
        "provider",
        "displayName",
        "inputCreditsPerMillion",
        "outputCreditsPerMillion",
        "contextWindow",
        "maxOutputTokens",
        "active",
    }
    ModelRate.objects.filter(model="gpt-4o").update(active=False)
    listed = client.get("/billing/model-rates?pageSize=100").json()["results"]
    assert next(r for r in listed if r["model"] == "gpt-4o")["active"] is False
    active = client.get("/billing/model-rates?active=true&pageSize=100").json()["results"]
    assert "gpt-4o" not in {r["model"] for r in active}
    assert {r["provider"] for r in client.get("/billing/model-rates?provider=anthropic").json()["results"]} == {
        "anthropic"
    }
    packages = client.get("/billing/packages").json()["results"]
    assert [p["priceCents"] for p in packages] == sorted(p["priceCents"] for p in packages)
    assert set(packages[0]) == {"id", "name", "credits", "priceCents", "currency"}
    assert_problem(anon.get("/billing/model-rates"), 401, "not_authenticated")


def test_grant_by_staff_with_idempotency(staff, org):
    client = client_for(staff, org)
    body = {"amount": "25.5", "reason": "Goodwill"}
    first = client.post("/billing/credits/grant", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201, first.content
    entry = first.json()
    assert entry["kind"] == "grant"
    assert entry["amount"] == "25.500000"
    assert entry["balanceAfter"] == "125.500000"
    assert entry["userId"] == str(staff.pk)
    again = client.post("/billing/credits/grant", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201
    assert again.json() == entry
    assert LedgerEntry.all_orgs.filter(organization=org, kind="grant").count() == 2  # sign-up + one
    reused = client.post(
        "/billing/credits/grant", {"amount": "1", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert_problem(reused, 409, "idempotency_key_reused")
    no_key = client.post("/billing/credits/grant", body, format="json")
    assert no_key.json()["balanceAfter"] == "151.000000"


def test_grant_a_package(staff, org):
    package = CreditPackage.objects.order_by("price_cents").first()
    response = client_for(staff, org).post(
        "/billing/credits/grant", {"packageId": str(package.pk), "reason": "Bought"}, format="json"
    )
    assert response.status_code == 201
    assert Decimal(response.json()["amount"]) == package.credits


def test_grant_validation_and_roles(staff, owner, org):
    client = client_for(staff, org)
    for bad in (
        {"amount": "0"},
        {"amount": "-1"},
        {"amount": "1.0000001"},
        {},
        {"amount": "1", "packageId": str(uuid.uuid4())},
    ):
        assert_problem(client.post("/billing/credits/grant", bad, format="json"), 400, "validation_error")
    assert_problem(
        client.post("/billing/credits/grant", {"packageId": str(uuid.uuid4())}, format="json"), 400, "validation_error"
    )
    assert_problem(
        client_for(owner).post("/billing/credits/grant", {"amount": "5"}, format="json"), 403, "permission_denied"
    )
    assert_problem(
        client_for(staff).post("/billing/credits/grant", {"amount": "5"}, format="json"), 400, "org_required"
    )


def test_capacity(member, org, spent):
    body = client_for(member).get("/billing/capacity").json()
    assert body["balance"] == "99.955000"
    assert body["burnRatePerDay"] == "0.006429"  # 0.045 / 7
    assert Decimal(body["runwayDays"]) == (Decimal("99.955") / Decimal("0.006429")).quantize(Decimal("0.1"))
    assert body["bySpecialist"] == [{"specialistId": str(spent), "name": "Ada", "credits": "0.045000"}]
    assert body["byModel"] == [{"model": "gpt-4o-mini", "credits": "0.045000"}]
    assert body["budgetUsedPercent"] is None
    org.monthly_budget = Decimal("0.09")
    org.save()
    assert client_for(member).get("/billing/capacity").json()["budgetUsedPercent"] == "50.00"


def test_capacity_with_no_usage(member, org):
    body = client_for(member).get("/billing/capacity").json()
    assert body["burnRatePerDay"] == "0.000000"
    assert body["runwayDays"] is None
    assert body["bySpecialist"] == []


def test_alerts_list_filter_and_acknowledge(admin_user, member, org):
    org.monthly_budget = Decimal("0.05")
    org.save()
    hold = services.reserve(org=org, model="gpt-4o-mini", input_tokens=0, max_output_tokens=500)
    services.settle(reservation_id=hold.reservation_id, input_tokens=0, output_tokens=500)  # 0.03 = 60 %
    client = client_for(member)
    alerts = client.get("/billing/alerts").json()["results"]
    assert [(a["kind"], a["threshold"]) for a in alerts] == [("budget_threshold", "50")]
    assert alerts[0]["acknowledgedAt"] is None
    assert_problem(client.post("/billing/alerts/acknowledge", {"all": True}, format="json"), 403, "permission_denied")
    admin = client_for(admin_user)
    assert_problem(admin.post("/billing/alerts/acknowledge", {}, format="json"), 400, "validation_error")
    done = admin.post("/billing/alerts/acknowledge", {"alertIds": [alerts[0]["id"]]}, format="json")
    assert done.json() == {"acknowledged": 1}
    assert client.get("/billing/alerts?acknowledged=false").json()["count"] == 0
    acked = client.get("/billing/alerts?acknowledged=true").json()["results"][0]
    assert acked["acknowledgedBy"] == str(admin_user.pk)
    assert admin.post("/billing/alerts/acknowledge", {"all": True}, format="json").json() == {"acknowledged": 0}


def test_low_balance_alert_threshold_is_credits(member, org):
    org.low_balance_threshold = Decimal("99.99")
    org.save()
    hold = services.reserve(org=org, model="gpt-4o-mini", input_tokens=0, max_output_tokens=500)
    services.settle(reservation_id=hold.reservation_id, input_tokens=0, output_tokens=500)
    alert = client_for(member).get("/billing/alerts").json()["results"][0]
    assert (alert["kind"], alert["threshold"]) == ("low_balance", "99.990000")


def test_circuit_toggle(admin_user, member, org):
    client = client_for(member)
    assert client.get("/billing/circuit").json() == {
        "state": "closed",
        "reason": None,
        "openedAt": None,
        "openedBy": None,
    }
    assert_problem(client.post("/billing/circuit/toggle", {}, format="json"), 403, "permission_denied")
    admin = client_for(admin_user)
    opened = admin.post("/billing/circuit/toggle", {"reason": "Runaway costs"}, format="json").json()
    assert opened["state"] == "open"
    assert opened["reason"] == "Runaway costs"
    assert opened["openedBy"] == str(admin_user.pk)
    assert opened["openedAt"]
    assert BudgetAlert.all_orgs.filter(organization=org, kind="circuit_opened").count() == 1
    assert client.get("/billing/circuit").json()["state"] == "open"
    closed = admin.post("/billing/circuit/toggle", {}, format="json").json()
    assert closed["state"] == "closed"
    assert admin.post("/billing/circuit/toggle", {"state": "closed"}, format="json").json()["state"] == "closed"
    assert_problem(admin.post("/billing/circuit/toggle", {"state": "ajar"}, format="json"), 400, "validation_error")
    events = list(CircuitEvent.all_orgs.filter(organization=org).order_by("created_at").values_list("state", "actor"))
    assert events[0] == ("open", admin_user.pk)
    assert len(events) == 3

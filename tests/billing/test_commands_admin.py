from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing import services
from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation

pytestmark = pytest.mark.django_db


def test_grant_credits_command_by_slug_and_id(org):
    out = StringIO()
    call_command("grant_credits", "--org", org.slug, "--amount", "12.25", "--reason", "Promo", stdout=out)
    assert "balance 112.250000" in out.getvalue()
    call_command("grant_credits", "--org", str(org.pk), "--amount", "1", stdout=StringIO())
    assert CreditAccount.all_orgs.get(organization=org).balance == Decimal("113.25")
    entry = LedgerEntry.all_orgs.filter(organization=org, kind="grant").order_by("-created_at")[1]
    assert entry.description == "Promo"
    with pytest.raises(CommandError):
        call_command("grant_credits", "--org", "nope", "--amount", "1")
    with pytest.raises(CommandError):
        call_command("grant_credits", "--org", org.slug, "--amount", "-1")
    with pytest.raises(CommandError):
        call_command("grant_credits", "--org", org.slug, "--amount", "1.0000001")


def test_load_model_rates_upserts(tmp_path, db):
    path = tmp_path / "rates.json"
    path.write_text(
        json.dumps(
            [
                {
                    "model": "local",
                    "provider": "local",
                    "displayName": "Local v2",
                    "inputCreditsPerMillion": 2,
                    "outputCreditsPerMillion": "4.5",
                    "contextWindow": 1000,
                },
                {
                    "model": "new-one",
                    "provider": "anthropic",
                    "displayName": "New",
                    "inputCreditsPerMillion": "0.1",
                    "outputCreditsPerMillion": 0.2,
                    "contextWindow": 9000,
                    "maxOutputTokens": 100,
                    "active": False,
                },
            ]
        )
    )
    out = StringIO()
    call_command("load_model_rates", str(path), stdout=out)
    assert "1 rates created, 1 updated" in out.getvalue()
    local = ModelRate.objects.get(model="local")
    assert (local.display_name, local.output_credits_per_million) == ("Local v2", Decimal("4.5"))
    new = ModelRate.objects.get(model="new-one")
    assert (new.output_credits_per_million, new.max_output_tokens, new.active) == (Decimal("0.2"), 100, False)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"model": "x"}),
        json.dumps([{"model": "x"}]),
        json.dumps(
            [
                {
                    "model": "x",
                    "provider": "martian",
                    "displayName": "X",
                    "inputCreditsPerMillion": 1,
                    "outputCreditsPerMillion": 1,
                    "contextWindow": 1,
                }
            ]
        ),
    ],
)
def test_load_model_rates_rejects_bad_files(tmp_path, db, content):
    path = tmp_path / "rates.json"
    path.write_text(content)
    with pytest.raises(CommandError):
        call_command("load_model_rates", str(path))


def test_bundled_rates_were_loaded_by_migration(db):
    assert ModelRate.objects.filter(provider="openai").exists()
    assert ModelRate.objects.filter(provider="anthropic").exists()
    assert ModelRate.objects.get(model="local").input_credits_per_million > 0


def test_release_reservations_command(org):
    hold = services.reserve(org=org, model="local", input_tokens=10, max_output_tokens=10)
    Reservation.all_orgs.filter(pk=hold.reservation_id).update(created_at=timezone.now() - timedelta(hours=2))
    out = StringIO()
    call_command("release_reservations", stdout=out)
    assert "Released 1" in out.getvalue()
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_admin_grant_action(client, org, django_user_model):
    operator = django_user_model.objects.create_superuser(email="ops@leancore.test", password="x-Passw0rd-x")
    client.force_login(operator)
    account = CreditAccount.all_orgs.get(organization=org)
    response = client.post(
        "/admin/billing/creditaccount/",
        {
            "action": "grant_credits",
            "_selected_action": [str(account.pk)],
            "apply": "1",
            "amount": "7.5",
            "reason": "Admin gift",
        },
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.balance == Decimal("107.5")
    entry = LedgerEntry.all_orgs.filter(organization=org).order_by("-created_at").first()
    assert (entry.kind, entry.description, entry.user_id) == ("grant", "Admin gift", operator.pk)
    # the action's form page renders
    page = client.post(
        "/admin/billing/creditaccount/", {"action": "grant_credits", "_selected_action": [str(account.pk)]}
    )
    assert page.status_code == 200
    assert b"Grant credits" in page.content


def test_admin_ledger_is_read_only(client, org, django_user_model):
    operator = django_user_model.objects.create_superuser(email="ops@leancore.test", password="x-Passw0rd-x")
    client.force_login(operator)
    entry = LedgerEntry.all_orgs.filter(organization=org).first()
    assert client.get("/admin/billing/ledgerentry/").status_code == 200
    assert client.get(f"/admin/billing/ledgerentry/{entry.pk}/delete/").status_code == 403
    assert client.post(f"/admin/billing/ledgerentry/{entry.pk}/change/", {"amount": "1"}).status_code == 403
    for page in (
        "/admin/billing/creditaccount/",
        "/admin/billing/modelrate/",
        "/admin/billing/circuit/",
        "/admin/billing/budgetalert/",
        "/admin/orgs/organization/",
        "/admin/accounts/user/",
    ):
        assert client.get(page).status_code == 200, page

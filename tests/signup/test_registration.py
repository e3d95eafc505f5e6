from __future__ import annotations

import pytest

from accounts.models import User
from billing.models import CreditAccount, LedgerEntry
from orgs.models import Membership, Organization
from tests.conftest import assert_problem, make_user

pytestmark = pytest.mark.django_db

BODY = {"organizationName": "Globex", "name": "Hank Scorpio", "email": "hank@globex.test", "password": "V0lcano-Lair!"}


def test_register_creates_user_org_owner_and_signup_credits(anon):
    response = anon.post("/register", BODY, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert {"accessToken", "refreshToken", "tokenType", "expiresIn", "user", "organization"} <= set(body)
    org = Organization.objects.get(pk=body["organization"]["id"])
    assert body["organization"]["slug"] == "globex"
    assert body["organization"]["role"] == "owner"
    assert body["user"]["organizations"] == [{"id": str(org.pk), "name": "Globex", "role": "owner"}]
    membership = Membership.all_orgs.get(organization=org)
    assert membership.role == "owner"
    assert membership.user.email == "hank@globex.test"
    account = CreditAccount.all_orgs.get(organization=org)
    assert str(account.balance) == "100.000000"
    grant = LedgerEntry.all_orgs.get(organization=org)
    assert grant.kind == "grant"
    balance = anon.get("/billing/credits/balance", HTTP_AUTHORIZATION=f"Bearer {body['accessToken']}")
    assert balance.json()["balance"] == "100.000000"


def test_signup_credits_come_from_settings(anon, settings):
    from decimal import Decimal

    settings.SIGNUP_CREDITS = Decimal("12.5")
    body = anon.post("/register", BODY, format="json").json()
    assert CreditAccount.all_orgs.get(organization_id=body["organization"]["id"]).balance == Decimal("12.5")


def test_slugs_are_unique(anon):
    first = anon.post("/register", BODY, format="json").json()
    second = anon.post("/register", {**BODY, "email": "other@globex.test"}, format="json").json()
    assert first["organization"]["slug"] != second["organization"]["slug"]
    assert second["organization"]["slug"].startswith("globex-")


def test_duplicate_email_names_the_field_and_creates_nothing(anon):
    make_user(email="hank@globex.test")
    before = (User.objects.count(), Organization.objects.count())
    body = assert_problem(
        anon.post("/register", {**BODY, "email": "HANK@globex.test"}, format="json"), 400, "validation_error"
    )
    assert "email" in body["errors"]
    assert (User.objects.count(), Organization.objects.count()) == before


def test_weak_password_names_the_field(anon):
    body = assert_problem(
        anon.post("/register", {**BODY, "password": "12345678"}, format="json"), 400, "validation_error"
    )
    assert "password" in body["errors"]
    assert not User.objects.filter(email="hank@globex.test").exists()


def test_missing_fields_are_named_in_camel_case(anon, db):
    body = assert_problem(anon.post("/register", {}, format="json"), 400, "validation_error")
    assert set(body["errors"]) == {"organizationName", "name", "email", "password"}
    assert Organization.objects.count() == 0


def test_malformed_json_is_a_problem(anon, db):
    response = anon.post("/register", "{not json", content_type="application/json")
    assert_problem(response, 400, "validation_error")


def test_register_is_throttled(anon, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "register": "2/hour"}
    anon.post("/register", BODY, format="json")
    anon.post("/register", {**BODY, "email": "x@globex.test"}, format="json")
    response = anon.post("/register", {**BODY, "email": "y@globex.test"}, format="json")
    assert_problem(response, 429, "rate_limited")
    assert "Retry-After" in response


# --- the flow above both floors: orgs makes the organization, billing its account ---


def test_the_organization_floor_alone_opens_no_credit_account(db):
    from orgs.services import create_organization

    org = create_organization(name="Floor only", owner=make_user(email="floor@example.com"))
    assert Membership.all_orgs.get(organization=org).role == "owner"
    assert not CreditAccount.all_orgs.filter(organization=org).exists()  # billing is not reached from below


def test_opening_an_organization_gives_it_the_sign_up_credits(db, settings):
    from decimal import Decimal

    from billing.models import Circuit
    from signup.services import open_organization

    settings.SIGNUP_CREDITS = Decimal("7.25")
    org = open_organization(name="Opened", owner=make_user(email="opened@example.com"))
    assert CreditAccount.all_orgs.get(organization=org).balance == Decimal("7.25")
    assert Circuit.all_orgs.filter(organization=org).exists()
    grant = LedgerEntry.all_orgs.get(organization=org)
    assert (grant.kind, grant.amount, grant.description) == ("grant", Decimal("7.25"), "Sign-up credits")


def test_a_sign_up_whose_account_cannot_open_leaves_nothing_behind(anon, monkeypatch):
    import signup.services

    def refuse(**kwargs):
        raise RuntimeError("billing is down")

    monkeypatch.setattr(signup.services, "open_account", refuse)
    before = (User.objects.count(), Organization.objects.count(), Membership.all_orgs.count())
    with pytest.raises(RuntimeError):
        signup.services.sign_up(
            organization_name="Globex", name="Hank", email="hank@globex.test", password=BODY["password"]
        )
    assert (User.objects.count(), Organization.objects.count(), Membership.all_orgs.count()) == before


def test_a_failed_opening_of_an_organization_leaves_no_organization(db, monkeypatch):
    import signup.services

    monkeypatch.setattr(signup.services, "open_account", lambda **kwargs: (_ for _ in ()).throw(RuntimeError("no")))
    with pytest.raises(RuntimeError):
        signup.services.open_organization(name="Half", owner=make_user(email="half@example.com"))
    assert not Organization.objects.filter(name="Half").exists()

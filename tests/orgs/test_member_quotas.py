"""Member quotas on the members' endpoints: PATCH /users/{id}/quota (who may set whose cap, what it
accepts), and monthlyCreditLimit and spentThisPeriod in GET /users and GET /users/{id} (per-person
spend private to the person and the admins)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from billing import services as billing
from billing.models import ModelRate
from orgs.models import Membership, Role
from tests.conftest import add_member, assert_problem, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def rate(db) -> ModelRate:
    return ModelRate.objects.create(
        model="quota-model",
        provider="openai",
        display_name="Quota",
        input_credits_per_million=Decimal("1000"),
        output_credits_per_million=Decimal("2000"),
        context_window=8000,
        max_output_tokens=1000,
    )


def spend(org, user, *, input_tokens: int, output_tokens: int) -> Decimal:
    """One settled call of ``user``'s: what it cost."""
    hold = billing.reserve(org=org, model="quota-model", input_tokens=1000, max_output_tokens=1000, user_id=user.pk)
    return billing.settle(
        reservation_id=hold.reservation_id, input_tokens=input_tokens, output_tokens=output_tokens
    ).credits


def quota(client, user, value):
    return client.patch(f"/users/{user.pk}/quota", {"monthlyCreditLimit": value}, format="json")


def limit_of(org, user) -> Decimal | None:
    return Membership.all_orgs.get(organization=org, user=user).monthly_credit_limit


def test_admin_sets_and_removes_a_members_cap(org, admin_user, member):
    client = client_for(admin_user)
    response = quota(client, member, "12.5")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["monthlyCreditLimit"], body["spentThisPeriod"]) == (
        str(member.pk),
        "12.500000",
        "0.000000",
    )
    assert limit_of(org, member) == Decimal("12.5")
    assert client.get(f"/users/{member.pk}").json()["monthlyCreditLimit"] == "12.500000"
    assert quota(client, member, "0").json()["monthlyCreditLimit"] == "0.000000"  # zero: no spending at all
    response = quota(client, member, None)
    assert response.status_code == 200
    assert response.json()["monthlyCreditLimit"] is None
    assert limit_of(org, member) is None
    # another admin's cap too
    other_admin = add_member(org, role=Role.ADMIN)
    assert quota(client, other_admin, "3").status_code == 200


def test_who_may_set_whose_cap(org, owner, admin_user, member):
    admin = client_for(admin_user)
    body = assert_problem(quota(admin, admin_user, "5"), 403, "permission_denied")  # never their own
    assert "own" in body["detail"]
    assert limit_of(org, admin_user) is None
    assert_problem(quota(admin, owner, "5"), 403, "permission_denied")  # an owner's needs an owner
    assert_problem(quota(client_for(member), member, "5"), 403, "permission_denied")  # members set none
    assert_problem(quota(client_for(member), admin_user, "5"), 403, "permission_denied")
    assert limit_of(org, owner) is None
    assert limit_of(org, member) is None
    owner_client = client_for(owner)
    assert quota(owner_client, owner, "7").status_code == 200  # an owner may, their own included
    assert quota(owner_client, admin_user, "8").status_code == 200
    assert (limit_of(org, owner), limit_of(org, admin_user)) == (Decimal(7), Decimal(8))


def test_staff_outside_the_org_set_no_cap(org, staff, member):
    assert_problem(quota(client_for(staff, org), member, "5"), 403, "permission_denied")
    assert limit_of(org, member) is None


@pytest.mark.parametrize(
    "value",
    ["1.1234567", "-0.000001", "abc", "1e30", 1e30],
)
def test_bad_caps_are_400_naming_the_field(org, admin_user, member, value):
    body = assert_problem(quota(client_for(admin_user), member, value), 400, "validation_error")
    assert "monthlyCreditLimit" in body["errors"]
    assert limit_of(org, member) is None


def test_missing_field_and_unknown_members(org, other_org, admin_user, member):
    client = client_for(admin_user)
    body = assert_problem(client.patch(f"/users/{member.pk}/quota", {}, format="json"), 400, "validation_error")
    assert "monthlyCreditLimit" in body["errors"]
    assert_problem(quota(client, type("U", (), {"pk": uuid.uuid4()}), "5"), 404, "not_found")
    outsider = add_member(other_org)
    assert_problem(quota(client, outsider, "5"), 404, "not_found")  # another org's member: not found here
    assert_problem(client.get(f"/users/{outsider.pk}"), 404, "not_found")
    assert limit_of(other_org, outsider) is None


def test_spent_this_period_is_this_months_usage_of_each_member(clock, org, owner, admin_user, member, rate):
    clock["at"] -= timedelta(days=30)  # last month: not this period's
    spend(org, member, input_tokens=1000, output_tokens=0)
    clock["at"] += timedelta(days=30)
    first = spend(org, member, input_tokens=500, output_tokens=100)  # 0.5 + 0.2
    second = spend(org, member, input_tokens=1, output_tokens=1)
    admins = spend(org, admin_user, input_tokens=0, output_tokens=1000)
    billing.reserve(org=org, model="quota-model", input_tokens=1000, max_output_tokens=1000, user_id=member.pk)
    billing.grant_credits(org=org, amount=Decimal(5), reason="more", actor=member)  # not spend
    quota(client_for(owner), member, "10")
    rows = {row["id"]: row for row in client_for(owner).get("/users").json()["results"]}
    assert rows[str(member.pk)]["spentThisPeriod"] == f"{first + second:.6f}" == "0.703000"  # no open hold
    assert rows[str(member.pk)]["monthlyCreditLimit"] == "10.000000"
    assert rows[str(admin_user.pk)]["spentThisPeriod"] == f"{admins:.6f}"
    assert rows[str(owner.pk)]["spentThisPeriod"] == "0.000000"
    assert rows[str(owner.pk)]["monthlyCreditLimit"] is None


def test_a_member_sees_only_their_own_spend(org, owner, admin_user, member, rate):
    spend(org, member, input_tokens=100, output_tokens=0)
    spend(org, admin_user, input_tokens=200, output_tokens=0)
    quota(client_for(owner), admin_user, "4")
    rows = {row["id"]: row for row in client_for(member).get("/users").json()["results"]}
    assert rows[str(member.pk)]["spentThisPeriod"] == "0.100000"
    assert rows[str(admin_user.pk)]["spentThisPeriod"] is None
    assert rows[str(owner.pk)]["spentThisPeriod"] is None
    assert rows[str(admin_user.pk)]["monthlyCreditLimit"] == "4.000000"  # the cap is not private
    assert client_for(member).get(f"/users/{admin_user.pk}").json()["spentThisPeriod"] is None
    assert client_for(member).get(f"/users/{member.pk}").json()["spentThisPeriod"] == "0.100000"
    for viewer in (admin_user, owner):  # the admins see everyone's
        assert client_for(viewer).get(f"/users/{member.pk}").json()["spentThisPeriod"] == "0.100000"
        assert client_for(viewer).get(f"/users/{admin_user.pk}").json()["spentThisPeriod"] == "0.200000"


def test_the_members_spend_is_one_query_per_page(org, owner, rate, django_assert_max_num_queries):
    """However many members a page has, their spend is one grouped query over the ledger."""
    client = client_for(owner)
    for _ in range(3):
        spend(org, add_member(org), input_tokens=10, output_tokens=0)
    client.get("/users")  # warm
    with django_assert_max_num_queries(50) as few:
        client.get("/users")
    for _ in range(10):
        spend(org, add_member(org), input_tokens=10, output_tokens=0)
    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        body = client.get("/users").json()
    assert body["count"] == 14
    assert sum(1 for q in many.captured_queries if "billing_ledgerentry" in q["sql"]) == 1


def test_the_organizations_admin_page_shows_each_members_spend_against_their_cap(
    org, owner, member, rate, operator, django_assert_max_num_queries
):
    spend(org, member, input_tokens=2000, output_tokens=0)  # 2 credits
    spend(org, owner, input_tokens=500, output_tokens=0)
    quota(client_for(owner), member, "8")
    page = operator.get(f"/admin/orgs/organization/{org.pk}/change/").content.decode()
    assert "Spent this month" in page
    assert "Monthly cap" in page
    assert "2.000000 credits (25% of the cap)" in page
    assert "8.000000 credits" in page
    assert "0.500000 credits" in page  # the owner's, no cap
    for _ in range(5):
        add_member(org)
    with django_assert_max_num_queries(200) as few:
        operator.get(f"/admin/orgs/organization/{org.pk}/change/")
    for _ in range(10):
        spend(org, add_member(org), input_tokens=10, output_tokens=0)
    with django_assert_max_num_queries(len(few.captured_queries)):  # more members, no more queries
        operator.get(f"/admin/orgs/organization/{org.pk}/change/")

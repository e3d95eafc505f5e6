from __future__ import annotations

import pytest

from orgs.models import Role
from tests.conftest import add_member, assert_problem, client_for, make_org

pytestmark = pytest.mark.django_db


def test_list_shows_only_the_callers_orgs_with_role(owner, org, other_org):
    second = make_org(name="Second")
    add_member(second, owner, role=Role.ADMIN)
    response = client_for(owner).get("/orgs")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert {"count", "next", "previous", "results"} == set(body)
    assert [(o["name"], o["role"]) for o in body["results"]] == [("Second", "admin"), ("Acme Corp", "owner")]
    assert set(body["results"][0]) == {"id", "name", "slug", "role", "billingEmail", "createdAt"}


def test_staff_see_every_org_with_null_role_outside_their_own(staff, org, other_org):
    body = client_for(staff).get("/orgs?pageSize=1").json()
    assert body["count"] == 2
    assert len(body["results"]) == 1
    assert body["next"]
    assert body["results"][0]["role"] is None


def test_list_needs_auth(anon):
    assert_problem(anon.get("/orgs"), 401, "not_authenticated")


def test_list_has_no_n_plus_one(owner, org, django_assert_max_num_queries):
    for i in range(5):
        add_member(make_org(name=f"Org {i}"), owner)
    client = client_for(owner)
    with django_assert_max_num_queries(5):
        assert client.get("/orgs").json()["count"] == 6


def test_detail(owner, org, member):
    response = client_for(member).get(f"/orgs/{org.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["memberCount"] == 2
    assert body["monthlyBudget"] is None
    assert body["lowBalanceThreshold"] is None
    assert body["role"] == "member"


def test_detail_of_another_org_is_404(owner, other_org):
    assert_problem(client_for(owner).get(f"/orgs/{other_org.pk}"), 404, "not_found")


def test_detail_ignores_the_org_header(owner, org, other_org):
    client = client_for(owner, other_org)  # header names an org the caller is not in
    assert client.get(f"/orgs/{org.pk}").status_code == 200


def test_update_as_admin(admin_user, org):
    response = client_for(admin_user).put(
        f"/orgs/{org.pk}", {"name": "Acme 2", "monthlyBudget": "50.5", "lowBalanceThreshold": "10"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Acme 2"
    assert body["monthlyBudget"] == "50.500000"
    assert body["lowBalanceThreshold"] == "10.000000"
    org.refresh_from_db()
    assert str(org.monthly_budget) == "50.500000"


def test_update_can_clear_budget(owner, org):
    client = client_for(owner)
    client.put(f"/orgs/{org.pk}", {"name": "Acme", "monthlyBudget": "5"}, format="json")
    body = client.put(f"/orgs/{org.pk}", {"name": "Acme", "monthlyBudget": None}, format="json").json()
    assert body["monthlyBudget"] is None


def test_update_validation(owner, org):
    client = client_for(owner)
    body = assert_problem(
        client.put(f"/orgs/{org.pk}", {"name": "", "monthlyBudget": "1.1234567"}, format="json"),
        400,
        "validation_error",
    )
    assert set(body["errors"]) == {"name", "monthlyBudget"}
    body = assert_problem(
        client.put(f"/orgs/{org.pk}", {"name": "x", "monthlyBudget": "-1"}, format="json"), 400, "validation_error"
    )
    assert "monthlyBudget" in body["errors"]


def test_update_as_member_is_403(member, org):
    assert_problem(client_for(member).put(f"/orgs/{org.pk}", {"name": "Nope"}, format="json"), 403, "permission_denied")


def test_update_another_org_is_404(owner, other_org):
    assert_problem(client_for(owner).put(f"/orgs/{other_org.pk}", {"name": "X"}, format="json"), 404, "not_found")


def test_staff_may_update_only_an_org_they_are_a_member_of(staff, org):
    denied = client_for(staff).put(f"/orgs/{org.pk}", {"name": "By staff"}, format="json")
    assert_problem(denied, 403, "permission_denied")
    add_member(org, staff, role=Role.ADMIN)
    assert client_for(staff).put(f"/orgs/{org.pk}", {"name": "By staff"}, format="json").status_code == 200


def test_billing_email(admin_user, member, org, other_org):
    ok = client_for(admin_user).patch(f"/orgs/{org.pk}/billing-email", {"billingEmail": "ap@acme.test"}, format="json")
    assert ok.status_code == 200
    assert ok.json()["billingEmail"] == "ap@acme.test"
    bad = client_for(admin_user).patch(f"/orgs/{org.pk}/billing-email", {"billingEmail": "nope"}, format="json")
    assert "billingEmail" in assert_problem(bad, 400, "validation_error")["errors"]
    denied = client_for(member).patch(f"/orgs/{org.pk}/billing-email", {"billingEmail": "x@y.z"}, format="json")
    assert_problem(denied, 403, "permission_denied")
    other = client_for(admin_user).patch(
        f"/orgs/{other_org.pk}/billing-email", {"billingEmail": "x@y.z"}, format="json"
    )
    assert_problem(other, 404, "not_found")
    assert_problem(
        client_for().patch(f"/orgs/{org.pk}/billing-email", {"billingEmail": "x@y.z"}, format="json"),
        401,
        "not_authenticated",
    )


def test_malformed_org_id_in_path_is_404(owner):
    assert_problem(client_for(owner).get("/orgs/not-a-uuid"), 404, "not_found")

"""A circuit an operator opened (from the admin, or as platform staff through the API) is closed only
by an operator: an org admin who is not staff gets 403 ``permission_denied`` and spending stays
stopped. A circuit the org opened itself, its admins close. An operator is platform staff with
``billing.manage_credits`` (the admin's permission for the circuit actions), on every road."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from billing import services
from billing.models import Circuit, CircuitEvent
from core.errors import PermissionDeniedError
from orgs.models import Role
from tests.conftest import add_member, assert_problem, client_for, make_user

pytestmark = pytest.mark.django_db

ADMIN_ORGS = "/admin/orgs/organization/"


def _admin_action(operator, action: str, org, reason: str):
    return operator.post(
        ADMIN_ORGS, {"action": action, "_selected_action": [str(org.pk)], "apply": "1", "reason": reason}
    )


def _operator_user(*, is_active: bool = True):
    user = make_user(is_staff=True)
    if not is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    user.user_permissions.add(Permission.objects.get(codename="manage_credits", content_type__app_label="billing"))
    return user


def _state(org) -> str:
    return Circuit.all_orgs.get(organization=org).state


def test_an_org_admin_cannot_close_a_circuit_an_operator_opened_in_the_admin(operator, org, admin_user, owner):
    _admin_action(operator, "open_circuit", org, "Card declined; call us")
    assert _state(org) == "open"
    events = CircuitEvent.all_orgs.filter(organization=org).count()
    for caller in (admin_user, owner):
        client = client_for(caller, org)
        for body in ({"state": "closed", "reason": "We need it"}, {}):  # an explicit close and a flip
            assert_problem(client.post("/billing/circuit/toggle", body, format="json"), 403, "permission_denied")
            assert _state(org) == "open"
    assert CircuitEvent.all_orgs.filter(organization=org).count() == events  # nothing recorded either
    # keeping it open (a new reason) is no closing: allowed, and it stays the operator's
    reopened = client_for(owner, org).post("/billing/circuit/toggle", {"state": "open", "reason": "ok"}, format="json")
    assert reopened.status_code == 200
    assert Circuit.all_orgs.get(organization=org).opened_by_operator
    assert_problem(
        client_for(owner, org).post("/billing/circuit/toggle", {"state": "closed"}, format="json"),
        403,
        "permission_denied",
    )
    _admin_action(operator, "close_circuit", org, "Paid")
    assert _state(org) == "closed"
    assert not Circuit.all_orgs.get(organization=org).opened_by_operator


def test_a_circuit_staff_opened_through_the_api_is_closed_by_staff_only(org, owner):
    staff = add_member(org, _operator_user(), role=Role.ADMIN)  # an operator who is an admin here
    opened = client_for(staff, org).post("/billing/circuit/toggle", {"state": "open", "reason": "x"}, format="json")
    assert opened.status_code == 200
    assert_problem(
        client_for(owner, org).post("/billing/circuit/toggle", {"state": "closed"}, format="json"),
        403,
        "permission_denied",
    )
    assert _state(org) == "open"
    closed = client_for(staff, org).post("/billing/circuit/toggle", {"state": "closed"}, format="json")
    assert closed.status_code == 200
    assert closed.json()["state"] == "closed"


def test_a_circuit_the_org_opened_its_admins_close(org, admin_user, owner):
    client_for(owner, org).post("/billing/circuit/toggle", {"state": "open", "reason": "Pause"}, format="json")
    assert _state(org) == "open"
    assert not Circuit.all_orgs.get(organization=org).opened_by_operator
    assert client_for(admin_user, org).post("/billing/circuit/toggle", {}, format="json").json()["state"] == "closed"


def test_the_service_refuses_too(org, owner):
    """The rule is the service's, whatever calls it."""
    operator = _operator_user()
    services.set_circuit(org=org, actor=operator, state="open", reason="Fraud check")
    with pytest.raises(PermissionDeniedError):
        services.set_circuit(org=org, actor=owner, state="closed")
    with pytest.raises(PermissionDeniedError):
        services.set_circuit(org=org, actor=None, state=None)
    assert _state(org) == "open"


def test_an_operator_who_opens_an_open_circuit_makes_it_theirs(operator, org, owner):
    """The org's admin opens first, to pre-empt the operator's lock; the operator opens it again (the
    state does not change): it is still the operator's, and the admin cannot close it."""
    client = client_for(owner, org)
    assert (
        client.post("/billing/circuit/toggle", {"state": "open", "reason": "pre-empt"}, format="json").status_code
        == 200
    )
    _admin_action(operator, "open_circuit", org, "Fraud hold")
    assert Circuit.all_orgs.get(organization=org).opened_by_operator
    assert_problem(client.post("/billing/circuit/toggle", {"state": "closed"}, format="json"), 403, "permission_denied")
    assert_problem(client.post("/billing/circuit/toggle", {}, format="json"), 403, "permission_denied")
    assert _state(org) == "open"
    services.set_circuit(org=org, actor=_operator_user(), state="open", reason="Still held")  # the service too
    assert_problem(client.post("/billing/circuit/toggle", {"state": "closed"}, format="json"), 403, "permission_denied")


def test_staff_without_manage_credits_is_no_operator(org, owner):
    """The API knows operators as the admin does: staff without ``billing.manage_credits`` (who may not
    open or close the circuit in the admin) is no operator through the API either."""
    staff = add_member(org, make_user(is_staff=True), role=Role.ADMIN)
    assert not services.is_operator(staff)
    assert services.is_operator(_operator_user())
    assert not services.is_operator(_operator_user(is_active=False))
    client_for(staff, org).post("/billing/circuit/toggle", {"state": "open", "reason": "x"}, format="json")
    assert not Circuit.all_orgs.get(organization=org).opened_by_operator  # the org's admins may close it
    assert client_for(owner, org).post("/billing/circuit/toggle", {"state": "closed"}, format="json").status_code == 200
    services.set_circuit(org=org, actor=_operator_user(), state="open", reason="Fraud check")
    with pytest.raises(PermissionDeniedError):
        services.set_circuit(org=org, actor=staff, state="closed")
    assert _state(org) == "open"

"""A circuit an operator opened (from the admin, or as platform staff through the API) is closed only
by an operator: an org admin who is not staff gets 403 ``permission_denied`` and spending stays
stopped. A circuit the org opened itself, its admins close."""

from __future__ import annotations

import pytest

from billing import services
from billing.models import Circuit, CircuitEvent
from orgs.models import Role
from tests.conftest import add_member, assert_problem, client_for, make_user

pytestmark = pytest.mark.django_db

ADMIN_ORGS = "/admin/orgs/organization/"


def _admin_action(operator, action: str, org, reason: str):
    return operator.post(
        ADMIN_ORGS, {"action": action, "_selected_action": [str(org.pk)], "apply": "1", "reason": reason}
    )


def _state(org) -> str:
    return Circuit.objects.get(organization=org).state


def test_an_org_admin_cannot_close_a_circuit_an_operator_opened_in_the_admin(operator, org, admin_user, owner):
    _admin_action(operator, "open_circuit", org, "Card declined; call us")
    assert _state(org) == "open"
    events = CircuitEvent.objects.filter(organization=org).count()
    for caller in (admin_user, owner):
        client = client_for(caller, org)
        for body in ({"state": "closed", "reason": "We need it"}, {}):  # an explicit close and a flip
            assert_problem(client.post("/billing/circuit/toggle", body, format="json"), 403, "permission_denied")
            assert _state(org) == "open"
    assert CircuitEvent.objects.filter(organization=org).count() == events  # nothing recorded either
    # keeping it open (a new reason) is no closing: allowed, and it stays the operator's
    reopened = client_for(owner, org).post("/billing/circuit/toggle", {"state": "open", "reason": "ok"}, format="json")
    assert reopened.status_code == 200
    assert Circuit.objects.get(organization=org).opened_by_operator
    assert_problem(
        client_for(owner, org).post("/billing/circuit/toggle", {"state": "closed"}, format="json"),
        403,
        "permission_denied",
    )
    _admin_action(operator, "close_circuit", org, "Paid")
    assert _state(org) == "closed"
    assert not Circuit.objects.get(organization=org).opened_by_operator


def test_a_circuit_staff_opened_through_the_api_is_closed_by_staff_only(org, owner):
    staff = add_member(org, make_user(is_staff=True), role=Role.ADMIN)  # an operator who is an admin here
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
    assert not Circuit.objects.get(organization=org).opened_by_operator
    assert client_for(admin_user, org).post("/billing/circuit/toggle", {}, format="json").json()["state"] == "closed"


def test_the_service_refuses_too(org, owner):
    """The rule is the service's, whatever calls it."""
    from core.errors import PermissionDeniedError

    operator = make_user(is_staff=True)
    services.set_circuit(org=org, actor=operator, state="open", reason="Fraud check")
    with pytest.raises(PermissionDeniedError):
        services.set_circuit(org=org, actor=owner, state="closed")
    with pytest.raises(PermissionDeniedError):
        services.set_circuit(org=org, actor=None, state=None)
    assert _state(org) == "open"

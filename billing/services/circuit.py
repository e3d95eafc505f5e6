"""The org's circuit breaker: open stops all spending."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing import webhook_events
from billing.models import (
    BudgetAlert,
    Circuit,
    CircuitEvent,
)
from billing.services.alerts import raise_alert
from core.credits import period_bounds
from core.errors import PermissionDeniedError
from orgs.models import Organization

OPERATOR_PERMISSION = "billing.manage_credits"


def is_operator(actor: User | None) -> bool:
    """An operator of the circuit: active platform staff with ``billing.manage_credits``, the
    permission the admin's open and close actions require. The one definition, whichever road (the
    admin or the API's toggle) the actor takes."""
    return actor is not None and actor.is_active and actor.is_staff and actor.has_perm(OPERATOR_PERMISSION)


@transaction.atomic
def set_circuit(
    *, org: Organization, actor: User | None, state: str | None, reason: str = "", by: str | None = None
) -> Circuit:
    """Opens or closes the org's circuit (``state`` None flips it). A circuit an operator opened is
    closed only by an operator: anyone else → ``PermissionDeniedError``. An operator who opens an
    already open circuit makes it theirs too (an org admin cannot pre-empt the operator's lock).
    ``by`` names who acted when there is no user (an org API key); the alert says it."""
    circuit, _ = Circuit.objects.select_for_update().get_or_create(organization=org)
    target = state or (Circuit.State.CLOSED if circuit.state == Circuit.State.OPEN else Circuit.State.OPEN)
    changed = target != circuit.state
    operator = is_operator(actor)
    if circuit.opened_by_operator and target == Circuit.State.CLOSED and not operator:
        raise PermissionDeniedError("An operator opened this circuit: only an operator may close it.")
    circuit.state = target
    circuit.reason = reason
    if target == Circuit.State.OPEN and (changed or operator):
        if changed:
            circuit.opened_at = timezone.now()
        circuit.opened_by = actor
        circuit.opened_by_operator = circuit.opened_by_operator or operator
    elif target == Circuit.State.CLOSED:
        circuit.opened_at = None
        circuit.opened_by = None
        circuit.opened_by_operator = False
    circuit.save()
    CircuitEvent.objects.create(organization=org, state=target, reason=reason, actor=actor)
    if changed:
        webhook_events.circuit_changed(circuit)
    if target == Circuit.State.OPEN and changed:
        who = by or getattr(actor, "email", "an operator")
        message = f"Spending for {org.name} was stopped by {who}" + (f": {reason}" if reason else ".")
        start, _ = period_bounds(timezone.now())
        raise_alert(org=org, kind=BudgetAlert.Kind.CIRCUIT_OPENED, threshold=None, period_start=start, message=message)
    return circuit

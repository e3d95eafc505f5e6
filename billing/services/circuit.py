"""The org's circuit breaker: open stops all spending."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.models import (
    BudgetAlert,
    Circuit,
    CircuitEvent,
)
from billing.services.alerts import raise_alert
from core.credits import period_bounds
from core.errors import PermissionDeniedError
from orgs.models import Organization


def _is_operator(actor: User | None) -> bool:
    """Platform staff (whom the admin and the API both know as ``is_staff``)."""
    return actor is not None and actor.is_staff


@transaction.atomic
def set_circuit(*, org: Organization, actor: User | None, state: str | None, reason: str = "") -> Circuit:
    """Opens or closes the org's circuit (``state`` None flips it). A circuit an operator opened is
    closed only by an operator: anyone else → ``PermissionDeniedError``."""
    circuit, _ = Circuit.objects.select_for_update().get_or_create(organization=org)
    target = state or (Circuit.State.CLOSED if circuit.state == Circuit.State.OPEN else Circuit.State.OPEN)
    changed = target != circuit.state
    if circuit.opened_by_operator and target == Circuit.State.CLOSED and not _is_operator(actor):
        raise PermissionDeniedError("An operator opened this circuit: only an operator may close it.")
    circuit.state = target
    circuit.reason = reason
    if target == Circuit.State.OPEN and changed:
        circuit.opened_at = timezone.now()
        circuit.opened_by = actor
        circuit.opened_by_operator = _is_operator(actor)
    elif target == Circuit.State.CLOSED:
        circuit.opened_at = None
        circuit.opened_by = None
        circuit.opened_by_operator = False
    circuit.save()
    CircuitEvent.objects.create(organization=org, state=target, reason=reason, actor=actor)
    if target == Circuit.State.OPEN and changed:
        who = getattr(actor, "email", "an operator")
        message = f"Spending for {org.name} was stopped by {who}" + (f": {reason}" if reason else ".")
        start, _ = period_bounds(timezone.now())
        raise_alert(org=org, kind=BudgetAlert.Kind.CIRCUIT_OPENED, threshold=None, period_start=start, message=message)
    return circuit

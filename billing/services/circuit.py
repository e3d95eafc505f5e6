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
from orgs.models import Organization


@transaction.atomic
def set_circuit(*, org: Organization, actor: User | None, state: str | None, reason: str = "") -> Circuit:
    circuit, _ = Circuit.objects.select_for_update().get_or_create(organization=org)
    target = state or (Circuit.State.CLOSED if circuit.state == Circuit.State.OPEN else Circuit.State.OPEN)
    changed = target != circuit.state
    circuit.state = target
    circuit.reason = reason
    if target == Circuit.State.OPEN and changed:
        circuit.opened_at = timezone.now()
        circuit.opened_by = actor
    elif target == Circuit.State.CLOSED:
        circuit.opened_at = None
        circuit.opened_by = None
    circuit.save()
    CircuitEvent.objects.create(organization=org, state=target, reason=reason, actor=actor)
    if target == Circuit.State.OPEN and changed:
        who = getattr(actor, "email", "an operator")
        message = f"Spending for {org.name} was stopped by {who}" + (f": {reason}" if reason else ".")
        start, _ = period_bounds(timezone.now())
        raise_alert(org=org, kind=BudgetAlert.Kind.CIRCUIT_OPENED, threshold=None, period_start=start, message=message)
    return circuit

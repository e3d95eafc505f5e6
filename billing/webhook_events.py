"""Billing's webhook events, each announced in the transaction of its cause (``webhooks.outbox``) with
its subject as the API shows it: the alert, the circuit (with its id), the grant's ledger entry."""

from __future__ import annotations

from billing.models import BudgetAlert, Circuit, LedgerEntry
from billing.serializers import AlertSerializer, CircuitSerializer, LedgerEntrySerializer
from webhooks.models import EventType
from webhooks.outbox import enqueue_event


def alert_raised(alert: BudgetAlert) -> None:
    enqueue_event(
        org_id=alert.organization_id,
        type=EventType.ALERT_RAISED,
        subject_id=alert.pk,
        data=lambda: AlertSerializer(alert).data,
    )


def circuit_changed(circuit: Circuit) -> None:
    enqueue_event(
        org_id=circuit.organization_id,
        type=EventType.CIRCUIT_CHANGED,
        subject_id=circuit.pk,
        data=lambda: {"id": circuit.pk, **CircuitSerializer(circuit).data},
    )


def credits_granted(entry: LedgerEntry) -> None:
    enqueue_event(
        org_id=entry.organization_id,
        type=EventType.CREDITS_GRANTED,
        subject_id=entry.pk,
        data=lambda: LedgerEntrySerializer(entry).data,
    )

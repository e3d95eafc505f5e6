"""The billing pages' actions: the forms they ask for, and what each does (the service with the operator
as actor, then the audit trail and the admin's own log)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TypedDict, cast

from django import forms
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from accounts.auth import current_user
from billing import services
from billing.admin.permissions import MONEY
from billing.models import Circuit, LedgerEntry
from core.credits import credit_str
from orgs.admin_base.actions import ReasonForm, form_action
from orgs.admin_base.audit_trail import record
from orgs.models import Organization


class GrantForm(forms.Form):
    amount = forms.DecimalField(max_digits=20, decimal_places=6, min_value=Decimal("0.000001"))
    reason = forms.CharField(max_length=500)


class AdjustForm(forms.Form):
    kind = forms.ChoiceField(choices=[("adjustment", "Adjustment (signed)"), ("refund", "Refund (positive)")])
    amount = forms.DecimalField(max_digits=20, decimal_places=6)
    reason = forms.CharField(max_length=500)


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=Decimal("0.000001"),
        required=False,
        help_text="Leave empty to refund each selected usage entry in full.",
    )
    reason = forms.CharField(max_length=500)


class GrantData(TypedDict):
    """``GrantForm``'s cleaned data."""

    amount: Decimal
    reason: str


class AdjustData(TypedDict):
    """``AdjustForm``'s cleaned data (a refund: ``RefundForm``'s, with its kind and amount)."""

    kind: str
    amount: Decimal
    reason: str


# --- what the actions do: the services, then the audit trail and the admin's log -----------------
# Each takes a form's cleaned data as ``form_action`` hands it (a mapping of the form's fields).


def grant_and_record(org: Organization, cleaned: Mapping[str, object], request: HttpRequest) -> LedgerEntry:
    data = cast(GrantData, cleaned)  # GrantForm's fields
    entry = services.grant_credits(org=org, amount=data["amount"], reason=data["reason"], actor=current_user(request))
    record(
        request,
        action="grant_credits",
        obj=entry,
        org=org,
        reason=data["reason"],
        details={"amount": credit_str(entry.amount), "balance_after": credit_str(entry.balance_after)},
        log_on=org,
    )
    return entry


def adjust_and_record(
    org: Organization, cleaned: Mapping[str, object], request: HttpRequest, *, refund_of: LedgerEntry | None = None
) -> LedgerEntry:
    data = cast(AdjustData, cleaned)  # AdjustForm's fields, or a refund's
    reason = data["reason"]
    if refund_of is not None:
        reason = f"Refund of ledger entry {refund_of.pk}: {reason}"
    entry = services.adjust_credits(
        org=org, amount=data["amount"], kind=data["kind"], reason=reason, actor=current_user(request)
    )
    details = {"kind": entry.kind, "amount": credit_str(entry.amount), "balance_after": credit_str(entry.balance_after)}
    if refund_of is not None:
        details["refund_of"] = str(refund_of.pk)
    action = "refund_credits" if entry.kind == LedgerEntry.Kind.REFUND else "adjust_credits"
    record(request, action=action, obj=entry, org=org, reason=data["reason"], details=details, log_on=org)
    return entry


def set_circuit_and_record(org: Organization, state: str, reason: str, request: HttpRequest) -> Circuit:
    circuit = services.set_circuit(org=org, actor=current_user(request), state=state, reason=reason)
    record(
        request,
        action="open_circuit" if state == Circuit.State.OPEN else "close_circuit",
        obj=circuit,
        org=org,
        reason=reason,
        details={"state": circuit.state},
        log_on=org,
    )
    return circuit


def acknowledge_and_record(org: Organization, alert_ids: list[uuid.UUID], reason: str, request: HttpRequest) -> int:
    count = services.acknowledge_alerts(org=org, user=current_user(request), alert_ids=alert_ids, all_=False)
    if count:
        record(
            request,
            action="acknowledge_alerts",
            obj=org,
            org=org,
            reason=reason,
            details={"alerts": [str(pk) for pk in alert_ids], "acknowledged": count},
        )
    return count


type AdminAction[M: Model] = Callable[[admin.ModelAdmin[M], HttpRequest, QuerySet[M]], HttpResponse]


def circuit_actions[M: Model](label: Callable[[M], str]) -> tuple[AdminAction[M], AdminAction[M]]:
    """Open and close the circuit of each selected record's organization (``label`` names a record)."""

    def open_circuit(modeladmin: admin.ModelAdmin[M], request: HttpRequest, queryset: QuerySet[M]) -> HttpResponse:
        return form_action(
            modeladmin,
            request,
            queryset,
            form_class=ReasonForm,
            title="Open the circuit (stop spending)",
            apply=lambda obj, data, req: set_circuit_and_record(
                org_of(obj), Circuit.State.OPEN, str(data["reason"]), req
            ),
            label=label,
        )

    def close_circuit(modeladmin: admin.ModelAdmin[M], request: HttpRequest, queryset: QuerySet[M]) -> HttpResponse:
        return form_action(
            modeladmin,
            request,
            queryset,
            form_class=ReasonForm,
            title="Close the circuit (allow spending)",
            apply=lambda obj, data, req: set_circuit_and_record(
                org_of(obj), Circuit.State.CLOSED, str(data["reason"]), req
            ),
            label=label,
        )

    return (
        admin.action(description="Open the circuit (stop spending)…", permissions=[MONEY])(open_circuit),
        admin.action(description="Close the circuit (allow spending)…", permissions=[MONEY])(close_circuit),
    )


def org_of(obj: Model) -> Organization:
    """The organization a page's record is, or belongs to (a circuit, an account)."""
    if isinstance(obj, Organization):
        return obj
    return cast(Organization, getattr(obj, "organization"))  # noqa: B009  # the others' organization

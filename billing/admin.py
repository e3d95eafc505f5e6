"""The back office of credits: accounts, the ledger, holds, alerts and the circuit, and the billing side
of an organization's page (balance, spend, alerts, circuit, the usage chart, money actions, the CSV
for invoicing). Every change goes through ``billing.services`` with the operator as actor, and is
recorded in the audit trail and in the admin's own log."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, DecimalField, F, IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import User
from billing import services
from billing.admin_charts import usage_of, usage_svg
from billing.models import (
    BudgetAlert,
    Circuit,
    CircuitEvent,
    CreditAccount,
    CreditPackage,
    LedgerEntry,
    ModelRate,
    Reservation,
)
from core.credits import credit_str, period_bounds
from core.exports import csv_writer
from orgs.admin import OrganizationAdmin
from orgs.admin_mixins import (
    AuditedAdmin,
    LabelledAdmin,
    ReadOnlyAdmin,
    ReasonForm,
    credits_text,
    form_action,
    record,
)
from orgs.models import Membership, Organization

MONEY = "manage_credits"  # billing.manage_credits: grant, adjust, refund, open and close the circuit
CREDITS = DecimalField(max_digits=20, decimal_places=6)


class MoneyPermission:
    """``@admin.action(permissions=["manage_credits"])``: only operators with billing.manage_credits."""

    def has_manage_credits_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(f"billing.{MONEY}")


class AcknowledgePermission:
    """``@admin.action(permissions=["acknowledge"])``: operators who may change alerts (the alerts'
    own page stays read-only)."""

    def has_acknowledge_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("billing.change_budgetalert")


# --- the forms the actions ask for ----------------------------------------------------------------


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


# --- what the actions do: the services, then the audit trail and the admin's log -----------------


def _grant(org: Organization, data, request) -> LedgerEntry:
    entry = services.grant_credits(org=org, amount=data["amount"], reason=data["reason"], actor=request.user)
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


def _adjust(org: Organization, data, request, *, refund_of: LedgerEntry | None = None) -> LedgerEntry:
    reason = data["reason"]
    if refund_of is not None:
        reason = f"Refund of ledger entry {refund_of.pk}: {reason}"
    entry = services.adjust_credits(
        org=org, amount=data["amount"], kind=data["kind"], reason=reason, actor=request.user
    )
    details = {"kind": entry.kind, "amount": credit_str(entry.amount), "balance_after": credit_str(entry.balance_after)}
    if refund_of is not None:
        details["refund_of"] = str(refund_of.pk)
    action = "refund_credits" if entry.kind == LedgerEntry.Kind.REFUND else "adjust_credits"
    record(request, action=action, obj=entry, org=org, reason=data["reason"], details=details, log_on=org)
    return entry


def _circuit(org: Organization, state: str, reason: str, request) -> Circuit:
    circuit = services.set_circuit(org=org, actor=request.user, state=state, reason=reason)
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


def _acknowledge(org: Organization, alert_ids: list[uuid.UUID], reason: str, request) -> int:
    count = services.acknowledge_alerts(org=org, user=request.user, alert_ids=alert_ids, all_=False)
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


# --- credit accounts ------------------------------------------------------------------------------


@admin.register(CreditAccount)
class CreditAccountAdmin(MoneyPermission, LabelledAdmin):
    list_display = ["account", "organization", "balance_display", "reserved_display", "spent_display", "period_start"]
    search_fields = ["organization__name", "organization__slug"]
    fields = ["organization", "balance_display", "reserved_display", "spent_display", "period_start", "updated_at"]
    readonly_fields = fields  # type: ignore[assignment]
    list_select_related = ["organization"]
    actions = ["grant_credits", "adjust_credits"]

    def object_label(self, obj) -> str:
        return f"Account of {obj.organization.name}"

    @admin.display(description="Account", ordering="organization__name")
    def account(self, obj) -> str:
        return self.object_label(obj)

    @admin.display(description="Balance", ordering="balance")
    def balance_display(self, obj) -> str:
        return credits_text(obj.balance)

    @admin.display(description="Reserved", ordering="reserved")
    def reserved_display(self, obj) -> str:
        return credits_text(obj.reserved)

    @admin.display(description="Spent this period", ordering="period_spent")
    def spent_display(self, obj) -> str:
        return credits_text(obj.period_spent)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # balances move only through the ledger (the actions)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Grant credits…", permissions=[MONEY])
    def grant_credits(self, request, queryset):
        return form_action(
            self,
            request,
            queryset.select_related("organization"),
            form_class=GrantForm,
            title="Grant credits",
            apply=lambda account, data, req: _grant(account.organization, data, req),
            label=lambda account: account.organization.name,
        )

    @admin.action(description="Adjust or refund credits…", permissions=[MONEY])
    def adjust_credits(self, request, queryset):
        return form_action(
            self,
            request,
            queryset.select_related("organization"),
            form_class=AdjustForm,
            title="Adjust or refund credits",
            apply=lambda account, data, req: _adjust(account.organization, data, req),
            label=lambda account: account.organization.name,
        )


# --- the ledger -----------------------------------------------------------------------------------


def _admin_link(viewname: str, pk, text: str) -> str:
    if pk is None:
        return "-"
    try:
        url = reverse(viewname, args=[pk])
    except NoReverseMatch:
        return text
    return format_html('<a href="{}">{}</a>', url, text)


def _user_emails(ids) -> dict:
    return dict(User.objects.filter(pk__in={pk for pk in ids if pk}).values_list("pk", "email"))


@admin.register(LedgerEntry)
class LedgerEntryAdmin(MoneyPermission, ReadOnlyAdmin):
    list_display = [
        "created_at",
        "organization",
        "kind",
        "amount_display",
        "balance_after_display",
        "model",
        "user_link",
        "specialist_link",
        "session_link",
        "description",
    ]
    list_filter = ["kind", ("organization", admin.RelatedOnlyFieldListFilter), "model", "created_at"]
    search_fields = ["organization__name", "organization__slug", "description", "model", "specialist_name"]
    list_select_related = ["organization", "package"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "organization",
        "kind",
        "amount_display",
        "balance_after_display",
        "model",
        "input_tokens",
        "output_tokens",
        "user_link",
        "api_key_id",
        "specialist_link",
        "session_link",
        "message_id",
        "package",
        "description",
    ]
    readonly_fields = fields  # type: ignore[assignment]
    actions = ["refund"]

    def get_queryset(self, request):
        email = User.objects.filter(pk=OuterRef("user_id")).values("email")[:1]
        return super().get_queryset(request).annotate(user_email=Subquery(email))

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj) -> str:
        return credits_text(obj.amount)

    @admin.display(description="Balance after", ordering="balance_after")
    def balance_after_display(self, obj) -> str:
        return credits_text(obj.balance_after)

    @admin.display(description="User", ordering="user_email")
    def user_link(self, obj) -> str:
        if obj.user_id is None:
            return "-"
        return _admin_link("admin:accounts_user_change", obj.user_id, obj.user_email or str(obj.user_id))

    @admin.display(description="Specialist", ordering="specialist_name")
    def specialist_link(self, obj) -> str:
        text = obj.specialist_name or str(obj.specialist_id)
        return _admin_link("admin:specialists_specialist_change", obj.specialist_id, text)

    @admin.display(description="Session")
    def session_link(self, obj) -> str:
        return _admin_link("admin:chat_chatsession_change", obj.session_id, "session")

    @admin.action(description="Refund the selected usage…", permissions=[MONEY])
    def refund(self, request, queryset):
        usage = queryset.filter(kind=LedgerEntry.Kind.USAGE, amount__lt=0).select_related("organization")
        if not usage.exists():
            self.message_user(request, "Only usage entries can be refunded.", messages.WARNING)
            return None

        def apply(entry, data, req):
            amount = data["amount"] or -entry.amount
            return _adjust(entry.organization, {**data, "kind": "refund", "amount": amount}, req, refund_of=entry)

        return form_action(
            self,
            request,
            usage,
            form_class=RefundForm,
            title="Refund usage",
            apply=apply,
            label=lambda entry: (
                f"{entry.organization.name}: {credits_text(-entry.amount)} on {entry.created_at:%Y-%m-%d}"
            ),
        )


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "model", "amount_display", "status", "charged_display"]
    list_filter = ["status", ("organization", admin.RelatedOnlyFieldListFilter), "model"]
    search_fields = ["organization__name"]
    list_select_related = ["organization"]

    @admin.display(description="Held", ordering="amount")
    def amount_display(self, obj) -> str:
        return credits_text(obj.amount)

    @admin.display(description="Charged", ordering="charged")
    def charged_display(self, obj) -> str:
        return credits_text(obj.charged)


@admin.register(ModelRate)
class ModelRateAdmin(AuditedAdmin):
    """Platform configuration: every change asks a reason and is in the audit trail (so it is made
    on the rate's page, not in the list)."""

    list_display = ["model", "provider", "display_name", "rates", "context_window", "active"]
    list_filter = ["provider", "active"]
    search_fields = ["model", "display_name"]

    @admin.display(description="Credits per million tokens (in / out)")
    def rates(self, obj) -> str:
        return f"{obj.input_credits_per_million:,.2f} / {obj.output_credits_per_million:,.2f}"


@admin.register(CreditPackage)
class CreditPackageAdmin(AuditedAdmin):
    list_display = ["name", "credits_display", "price_cents", "currency", "active"]
    list_filter = ["active", "currency"]

    @admin.display(description="Credits", ordering="credits")
    def credits_display(self, obj) -> str:
        return credits_text(obj.credits)


# --- alerts and the circuit -----------------------------------------------------------------------


def threshold_text(alert: BudgetAlert) -> str:
    if alert.threshold is None:
        return "-"
    if alert.kind == BudgetAlert.Kind.BUDGET_THRESHOLD:
        return f"{alert.threshold.normalize():f}% of the monthly budget"
    return f"balance below {credits_text(alert.threshold)}"


@admin.register(BudgetAlert)
class BudgetAlertAdmin(AcknowledgePermission, ReadOnlyAdmin):
    list_display = ["created_at", "organization", "kind", "threshold_display", "message", "acknowledged"]
    list_filter = [
        "kind",
        ("acknowledged_at", admin.EmptyFieldListFilter),
        ("organization", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["organization__name", "message"]
    fields = ["organization", "kind", "threshold_display", "period_start", "message", "created_at", "acknowledged"]
    readonly_fields = fields  # type: ignore[assignment]
    list_select_related = ["organization", "acknowledged_by"]
    actions = ["acknowledge"]

    @admin.display(description="Threshold")
    def threshold_display(self, obj) -> str:
        return threshold_text(obj)

    @admin.display(description="Acknowledged", ordering="acknowledged_at")
    def acknowledged(self, obj) -> str:
        if obj.acknowledged_at is None:
            return "open"
        by = obj.acknowledged_by.email if obj.acknowledged_by else "someone"
        return f"{obj.acknowledged_at:%Y-%m-%d %H:%M} by {by}"

    @admin.action(description="Acknowledge the selected alerts…", permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        open_alerts = queryset.filter(acknowledged_at__isnull=True).select_related("organization")
        if not open_alerts.exists():
            self.message_user(request, "The selected alerts are already acknowledged.", messages.WARNING)
            return None
        return form_action(
            self,
            request,
            open_alerts,
            title="Acknowledge alerts",
            apply=lambda alert, data, req: _acknowledge(alert.organization, [alert.pk], data["reason"], req),
            label=lambda alert: f"{alert.organization.name}: {alert.message}",
        )


class CircuitEventInline(admin.TabularInline):
    """The circuit's history: who opened or closed it, and why."""

    model = CircuitEvent
    fk_name = "organization"
    extra = 0
    fields = ["created_at", "state", "reason", "actor"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    verbose_name = "circuit change"
    verbose_name_plural = "circuit history"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _circuit_actions(label):
    def open_circuit(modeladmin, request, queryset):
        return form_action(
            modeladmin,
            request,
            queryset,
            form_class=ReasonForm,
            title="Open the circuit (stop spending)",
            apply=lambda obj, data, req: _circuit(_org(obj), Circuit.State.OPEN, data["reason"], req),
            label=label,
        )

    def close_circuit(modeladmin, request, queryset):
        return form_action(
            modeladmin,
            request,
            queryset,
            form_class=ReasonForm,
            title="Close the circuit (allow spending)",
            apply=lambda obj, data, req: _circuit(_org(obj), Circuit.State.CLOSED, data["reason"], req),
            label=label,
        )

    return (
        admin.action(description="Open the circuit (stop spending)…", permissions=[MONEY])(open_circuit),
        admin.action(description="Close the circuit (allow spending)…", permissions=[MONEY])(close_circuit),
    )


def _org(obj) -> Organization:
    return obj if isinstance(obj, Organization) else obj.organization


@admin.register(Circuit)
class CircuitAdmin(MoneyPermission, LabelledAdmin, ReadOnlyAdmin):
    list_display = ["circuit", "organization", "state", "reason", "opened_at", "opened_by"]
    list_filter = ["state"]
    search_fields = ["organization__name"]
    fields = ["organization", "state", "reason", "opened_at", "opened_by", "opened_by_operator", "updated_at"]
    readonly_fields = fields  # type: ignore[assignment]
    list_select_related = ["organization", "opened_by"]
    actions = [*_circuit_actions(lambda circuit: circuit.organization.name)]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organization")

    def object_label(self, obj) -> str:
        return f"{obj.organization.name}: {obj.state}"

    @admin.display(description="Circuit", ordering="organization__name")
    def circuit(self, obj) -> str:
        return self.object_label(obj)


@admin.register(CircuitEvent)
class CircuitEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "state", "reason", "actor"]
    list_filter = ["state", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["organization__name", "reason", "actor__email"]
    list_select_related = ["organization", "actor"]


# --- the organization's page, with its billing ----------------------------------------------------


def _sum_of(queryset, expression) -> Coalesce:
    total = queryset.values("organization").annotate(total=Sum(expression)).values("total")[:1]
    return Coalesce(Subquery(total, output_field=CREDITS), Value(Decimal(0)), output_field=CREDITS)


def _count_of(queryset) -> Coalesce:
    count = queryset.values("organization").annotate(count=Count("pk")).values("count")[:1]
    return Coalesce(Subquery(count, output_field=IntegerField()), Value(0))


def with_billing(queryset, now: datetime | None = None):
    """Organizations with balance, reserved, this month's spend, the last 7 days' burn, open alerts,
    circuit state and member count: one query, however many organizations."""
    now = now or timezone.now()
    month_start, _ = period_bounds(now)
    usage = LedgerEntry.objects.filter(organization=OuterRef("pk"), kind=LedgerEntry.Kind.USAGE)
    return queryset.annotate(
        balance=Coalesce(F("credit_account__balance"), Value(Decimal(0)), output_field=CREDITS),
        reserved=Coalesce(F("credit_account__reserved"), Value(Decimal(0)), output_field=CREDITS),
        spent_month=_sum_of(usage.filter(created_at__gte=month_start), -F("amount")),
        burn_7d=_sum_of(usage.filter(created_at__gte=now - timedelta(days=7)), -F("amount")),
        open_alerts=_count_of(BudgetAlert.objects.filter(organization=OuterRef("pk"), acknowledged_at__isnull=True)),
        members=_count_of(Membership.objects.filter(organization=OuterRef("pk"), status=Membership.Status.ACTIVE)),
        circuit_state=Coalesce(F("circuit__state"), Value(Circuit.State.CLOSED)),
    ).annotate(available=F("balance") - F("reserved"))


class CircuitStateFilter(admin.SimpleListFilter):
    title = "circuit"
    parameter_name = "circuit"

    def lookups(self, request, model_admin):
        return [("open", "Open (spending stopped)"), ("closed", "Closed")]

    def queryset(self, request, queryset):
        if self.value() in ("open", "closed"):
            return queryset.filter(circuit_state=self.value())
        return queryset


class RunwayFilter(admin.SimpleListFilter):
    """Which organizations run out within a week: what is available is less than 7 days of the last 7
    days' burn."""

    title = "runway"
    parameter_name = "runway"

    def lookups(self, request, model_admin):
        return [("week", "Runs out within a week"), ("empty", "Nothing available")]

    def queryset(self, request, queryset):
        if self.value() == "week":
            return queryset.filter(burn_7d__gt=0, available__lt=F("burn_7d"))
        if self.value() == "empty":
            return queryset.filter(available__lte=0)
        return queryset


class SpendFilter(admin.SimpleListFilter):
    title = "spend this month"
    parameter_name = "spend"

    def lookups(self, request, model_admin):
        return [("top10", "Top 10 spenders"), ("none", "Nothing spent")]

    def queryset(self, request, queryset):
        if self.value() == "top10":
            top = queryset.filter(spent_month__gt=0).order_by("-spent_month").values_list("pk", flat=True)[:10]
            return queryset.filter(pk__in=list(top))
        if self.value() == "none":
            return queryset.filter(spent_month=0)
        return queryset


class OpenAlertInline(admin.TabularInline):
    model = BudgetAlert
    fk_name = "organization"
    extra = 0
    fields = ["created_at", "kind", "threshold_display", "message"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    verbose_name = "open alert"
    verbose_name_plural = "open alerts"
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).filter(acknowledged_at__isnull=True)

    @admin.display(description="Threshold")
    def threshold_display(self, obj) -> str:
        return threshold_text(obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _month_bounds(value: str | None) -> tuple[datetime, datetime]:
    if not value:
        return period_bounds(timezone.now())
    match = MONTH.match(value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise Http404("The month must be written YYYY-MM.")
    return period_bounds(datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC))


def ledger_csv(org: Organization, start: datetime, end: datetime) -> HttpResponse:
    """The org's ledger for a month, then its usage by model and totals by kind: exact decimals."""
    entries = list(
        LedgerEntry.objects.for_org(org).filter(created_at__gte=start, created_at__lt=end).order_by("created_at")
    )
    emails = _user_emails(entry.user_id for entry in entries)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="ledger-{org.slug}-{start:%Y-%m}.csv"'
    writer = csv_writer(response)  # formula-like cells escaped (core.exports)
    writer.writerow(
        [
            "created_at",
            "kind",
            "amount",
            "balance_after",
            "model",
            "input_tokens",
            "output_tokens",
            "specialist",
            "specialist_id",
            "session_id",
            "user",
            "api_key_id",
            "description",
        ]
    )
    usage: dict[str, list] = defaultdict(lambda: [0, 0, Decimal(0)])
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        writer.writerow(
            [
                entry.created_at.astimezone(UTC).isoformat(),
                entry.kind,
                credit_str(entry.amount),
                credit_str(entry.balance_after),
                entry.model,
                entry.input_tokens,
                entry.output_tokens,
                entry.specialist_name,
                entry.specialist_id or "",
                entry.session_id or "",
                emails.get(entry.user_id, entry.user_id or ""),
                entry.api_key_id or "",
                entry.description,
            ]
        )
        totals[entry.kind] += entry.amount
        if entry.kind == LedgerEntry.Kind.USAGE:
            row = usage[entry.model]
            row[0] += entry.input_tokens
            row[1] += entry.output_tokens
            row[2] += -entry.amount
    writer.writerow([])
    writer.writerow(["usage_model", "input_tokens", "output_tokens", "credits"])
    for model in sorted(usage):
        input_tokens, output_tokens, used = usage[model]
        writer.writerow([model, input_tokens, output_tokens, credit_str(used)])
    writer.writerow([])
    writer.writerow(["total_kind", "amount"])
    for kind in LedgerEntry.Kind.values:
        writer.writerow([kind, credit_str(totals.get(kind, Decimal(0)))])
    return response


class BillingOrganizationAdmin(MoneyPermission, AcknowledgePermission, OrganizationAdmin):
    """The organization's page as orgs draws it, with its credits, alerts, circuit and usage."""

    list_display = [
        "name",
        "slug",
        "balance_display",
        "reserved_display",
        "spent_display",
        "open_alerts_display",
        "circuit_display",
        "members_display",
        "budget_display",
    ]
    list_filter = [CircuitStateFilter, RunwayFilter, SpendFilter, "created_at"]
    inlines = [*OrganizationAdmin.inlines, OpenAlertInline, CircuitEventInline]
    billing_fields = [
        "balance_display",
        "reserved_display",
        "spent_display",
        "burn_display",
        "circuit_display",
        "open_alerts_display",
        "members_display",
        "exports",
    ]
    readonly_fields = [*OrganizationAdmin.readonly_fields, *billing_fields, "usage_chart"]

    actions = [
        "grant_credits",
        "adjust_credits",
        *_circuit_actions(lambda org: org.name),
        "acknowledge_alerts",
        "export_ledger",
    ]

    def get_queryset(self, request):
        return with_billing(super().get_queryset(request))

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return super().get_fieldsets(request, obj)  # a new organization: its name and owner
        fieldsets: list = [
            (None, {"fields": ["name", "slug", "billing_email", "monthly_budget", "low_balance_threshold"]})
        ]
        fieldsets += [
            ("Credits", {"fields": self.billing_fields}),
            ("Usage over the last 30 days", {"fields": ["usage_chart"]}),
            ("Record", {"fields": ["id", "created_at", "updated_at"]}),
        ]
        return self.with_reason(request, obj, fieldsets)

    def get_urls(self):
        view = self.admin_site.admin_view(self.ledger_csv_view)
        return [path("<uuid:object_id>/ledger.csv", view, name="orgs_organization_ledger_csv"), *super().get_urls()]

    def ledger_csv_view(self, request, object_id):
        if not (self.has_view_permission(request) and request.user.has_perm("billing.view_ledgerentry")):
            raise PermissionDenied
        org = Organization.objects.filter(pk=object_id).first()
        if org is None:
            raise Http404("No such organization.")
        start, end = _month_bounds(request.GET.get("month"))
        return ledger_csv(org, start, end)

    # the columns and fields
    @admin.display(description="Balance", ordering="balance")
    def balance_display(self, obj) -> str:
        return credits_text(obj.balance)

    @admin.display(description="Reserved", ordering="reserved")
    def reserved_display(self, obj) -> str:
        return credits_text(obj.reserved)

    @admin.display(description="Spent this month", ordering="spent_month")
    def spent_display(self, obj) -> str:
        return credits_text(obj.spent_month)

    @admin.display(description="Used in the last 7 days", ordering="burn_7d")
    def burn_display(self, obj) -> str:
        return credits_text(obj.burn_7d)

    @admin.display(description="Open alerts", ordering="open_alerts")
    def open_alerts_display(self, obj) -> int:
        return obj.open_alerts

    @admin.display(description="Circuit", ordering="circuit_state")
    def circuit_display(self, obj) -> str:
        return "open (spending stopped)" if obj.circuit_state == Circuit.State.OPEN else "closed"

    @admin.display(description="Members", ordering="members")
    def members_display(self, obj) -> int:
        return obj.members

    @admin.display(description="Monthly budget", ordering="monthly_budget")
    def budget_display(self, obj) -> str:
        return credits_text(obj.monthly_budget)

    @admin.display(description="Ledger for invoicing (CSV)")
    def exports(self, obj) -> str:
        now = timezone.now()
        last = (period_bounds(now)[0] - timedelta(days=1)).strftime("%Y-%m")
        url = reverse("admin:orgs_organization_ledger_csv", args=[obj.pk])
        months = [(now.strftime("%Y-%m"), "this month"), (last, "last month")]
        return format_html_join(" · ", '<a href="{}?month={}">{} ({})</a>', ((url, m, label, m) for m, label in months))

    @admin.display(description="Credits used per day, by model")
    def usage_chart(self, obj):
        return usage_svg(usage_of(obj, timezone.now()))

    # the actions
    @admin.action(description="Grant credits…", permissions=[MONEY])
    def grant_credits(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            form_class=GrantForm,
            title="Grant credits",
            apply=_grant,
            label=lambda org: f"{org.name} (balance {credits_text(org.balance)})",
        )

    @admin.action(description="Adjust or refund credits…", permissions=[MONEY])
    def adjust_credits(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            form_class=AdjustForm,
            title="Adjust or refund credits",
            apply=_adjust,
            label=lambda org: f"{org.name} (balance {credits_text(org.balance)})",
        )

    @admin.action(description="Acknowledge the open alerts…", permissions=["acknowledge"])
    def acknowledge_alerts(self, request, queryset):
        with_alerts = queryset.filter(open_alerts__gt=0)
        if not with_alerts.exists():
            self.message_user(request, "The selected organizations have no open alerts.", messages.WARNING)
            return None

        def apply(org, data, req):
            ids = list(
                BudgetAlert.objects.for_org(org).filter(acknowledged_at__isnull=True).values_list("pk", flat=True)
            )
            return _acknowledge(org, ids, data["reason"], req)

        return form_action(
            self,
            request,
            with_alerts,
            title="Acknowledge the open alerts",
            apply=apply,
            label=lambda org: f"{org.name} ({org.open_alerts} open alert(s))",
        )

    @admin.action(description="Export this month's ledger (CSV)", permissions=["view"])
    def export_ledger(self, request, queryset):
        orgs = list(queryset[:2])
        if len(orgs) != 1:
            self.message_user(request, "Select one organization to export.", messages.WARNING)
            return None
        if not request.user.has_perm("billing.view_ledgerentry"):
            raise PermissionDenied
        start, end = _month_bounds(request.POST.get("month"))
        return ledger_csv(orgs[0], start, end)

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypedDict

from django import forms
from django.utils import timezone
from rest_framework import serializers

from billing.models import BudgetAlert, Circuit, CreditPackage, LedgerEntry, ModelRate
from billing.usage import DIMENSIONS, MAX_DAYS, Figures, SummaryRow
from core.credits import period_bounds
from core.fields import CreditField, EmptyAsNullCharField
from core.filters import DateOrDateTimeField
from core.serializers import PlainReadModelSerializer
from orgs.fields import OrgRelatedField


class BalanceSerializer(serializers.Serializer[object]):
    balance = CreditField()
    reserved = CreditField()
    available = CreditField()
    monthly_budget = CreditField(allow_null=True)
    spent_this_period = CreditField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    low_balance_threshold = CreditField(allow_null=True)


class LedgerEntrySerializer(PlainReadModelSerializer[LedgerEntry]):
    pages_read_as_rows = True
    amount = CreditField()
    balance_after = CreditField()
    model = EmptyAsNullCharField(allow_null=True)

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "kind",
            "amount",
            "balance_after",
            "model",
            "input_tokens",
            "output_tokens",
            "specialist_id",
            "session_id",
            "user_id",
            "api_key_id",
            "description",
            "created_at",
        ]


class ModelRateSerializer(PlainReadModelSerializer[ModelRate]):
    pages_read_as_rows = True
    input_credits_per_million = CreditField()
    output_credits_per_million = CreditField()

    class Meta:
        model = ModelRate
        fields = [
            "model",
            "provider",
            "display_name",
            "input_credits_per_million",
            "output_credits_per_million",
            "context_window",
            "max_output_tokens",
            "active",
        ]


class CreditPackageSerializer(PlainReadModelSerializer[CreditPackage]):
    pages_read_as_rows = True
    credits = CreditField()

    class Meta:
        model = CreditPackage
        fields = ["id", "name", "credits", "price_cents", "currency"]


class GrantSerializer(serializers.Serializer[object]):
    amount = CreditField(required=False, min_value=Decimal("0.000001"))
    package_id = serializers.PrimaryKeyRelatedField(
        queryset=CreditPackage.objects.filter(active=True), required=False, source="package"
    )
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if ("amount" in attrs) == ("package" in attrs):
            raise serializers.ValidationError({"amount": ["Give either amount or packageId."]})
        return attrs


class CapacitySpecialistSerializer(serializers.Serializer[object]):
    specialist_id = serializers.UUIDField()
    name = serializers.CharField()
    credits = CreditField()


class CapacityModelSerializer(serializers.Serializer[object]):
    model = serializers.CharField()
    credits = CreditField()


class CapacitySerializer(serializers.Serializer[object]):
    balance = CreditField()
    available = CreditField()
    burn_rate_per_day = CreditField(help_text="Average usage per day over the last 7 days.")
    runway_days = serializers.DecimalField(
        max_digits=20,
        decimal_places=1,
        allow_null=True,
        help_text="available / burnRatePerDay; null when nothing burns.",
    )
    monthly_budget = CreditField(allow_null=True)
    spent_this_period = CreditField()
    budget_used_percent = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    by_specialist = CapacitySpecialistSerializer(many=True)
    by_model = CapacityModelSerializer(many=True)


class AlertSerializer(PlainReadModelSerializer[BudgetAlert]):
    pages_read_as_rows = True
    threshold = serializers.SerializerMethodField()

    class Meta:
        model = BudgetAlert
        fields = ["id", "kind", "threshold", "message", "created_at", "acknowledged_at", "acknowledged_by"]

    def get_threshold(self, alert: BudgetAlert) -> str | None:
        """The percent ("50") for budget alerts, the credit threshold for low balance."""
        if alert.threshold is None:
            return None
        if alert.kind == BudgetAlert.Kind.BUDGET_THRESHOLD:
            return str(alert.threshold.to_integral_value())
        return f"{alert.threshold:.6f}"


class AcknowledgeSerializer(serializers.Serializer[object]):
    alert_ids = serializers.ListField(
        child=OrgRelatedField(model=BudgetAlert), required=False, help_text="Alerts of this organization."
    )
    all = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if not attrs.get("all") and not attrs.get("alert_ids"):
            raise serializers.ValidationError({"alert_ids": ["Give alertIds or all: true."]})
        return attrs


class AcknowledgeResponseSerializer(serializers.Serializer[object]):
    acknowledged = serializers.IntegerField()


class CircuitSerializer(serializers.ModelSerializer[Circuit]):
    reason = serializers.SerializerMethodField()

    class Meta:
        model = Circuit
        fields = ["state", "reason", "opened_at", "opened_by"]

    def get_reason(self, circuit: Circuit) -> str | None:
        return circuit.reason or None


class CircuitToggleSerializer(serializers.Serializer[object]):
    state = serializers.ChoiceField(choices=Circuit.State.choices, required=False)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


# --- Usage analytics ------------------------------------------------------------------------------


MAX_GROUPS = 2

type _Fields = dict[str, serializers.Field[Any, Any, Any, Any]]  # DRF's get_fields: fields of every kind


class DateOrDateTimeParam(serializers.Field[datetime, object, object, object]):
    """An ISO date (its midnight, UTC) or date-time; one without an offset is UTC."""

    def to_internal_value(self, data: object) -> datetime:
        try:
            value = DateOrDateTimeField().to_python(data)
        except forms.ValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        if value is None:
            raise serializers.ValidationError("Enter an ISO 8601 date or date-time.")
        return value


class GroupByField(serializers.Field[tuple[str, ...], object, object, object]):
    """One or two of the dimensions, comma-separated."""

    def to_internal_value(self, data: object) -> tuple[str, ...]:
        names = tuple(part.strip() for part in str(data).split(",") if part.strip())
        if not names or len(names) > MAX_GROUPS:
            raise serializers.ValidationError(f"Give one or two of: {', '.join(DIMENSIONS)}.")
        unknown = [name for name in names if name not in DIMENSIONS]
        if unknown:
            raise serializers.ValidationError(f"Unknown: {', '.join(unknown)}; use {', '.join(DIMENSIONS)}.")
        if len(set(names)) != len(names):
            raise serializers.ValidationError("A dimension is named twice.")
        return names


# the query as its fields read it ("from" is a keyword: the functional form)
_SummaryParams = TypedDict(
    "_SummaryParams", {"from": datetime, "to": datetime, "group_by": tuple[str, ...]}, total=False
)


class SummaryQuery(TypedDict):
    """What ``usage.summary`` is asked: the period and the dimensions."""

    start: datetime
    end: datetime
    group_by: tuple[str, ...]


class UsageSummaryQuerySerializer(serializers.Serializer[object]):
    """``from``, ``to`` (default: this period, at most 400 days) and ``groupBy``."""

    def get_fields(self) -> _Fields:
        return {
            "from": DateOrDateTimeParam(required=False),
            "to": DateOrDateTimeParam(required=False),
            "group_by": GroupByField(),
        }

    def validate(self, attrs: _SummaryParams) -> SummaryQuery:
        start, end = period_bounds(timezone.now())
        start, end = attrs.get("from", start), attrs.get("to", end)
        if end <= start:
            raise serializers.ValidationError({"to": ["Must be after from."]})
        if end - start > timedelta(days=MAX_DAYS):
            message = f"At most {MAX_DAYS} days from from to to."
            raise serializers.ValidationError({"from": [message], "to": [message]})
        return {"start": start, "end": end, "group_by": attrs["group_by"]}


class UsageFiguresSerializer[Figured](serializers.Serializer[Figured]):
    """The figures of a period or a group (``Figures``); a row's serializer gives its own instance type."""

    credits = CreditField(help_text="Credits spent (positive).")
    calls = serializers.IntegerField(help_text="Model calls billed.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()


class UsageRowSerializer(UsageFiguresSerializer[SummaryRow]):
    """A group's key (only the dimensions of ``groupBy``; null: usage with no value for it), then its figures."""

    day = serializers.DateField(required=False, allow_null=True, help_text="With groupBy=day (UTC).")
    user_id = serializers.UUIDField(required=False, allow_null=True, help_text="With groupBy=member.")
    specialist_id = serializers.UUIDField(required=False, allow_null=True, help_text="With groupBy=specialist.")
    model = serializers.CharField(required=False, allow_null=True, help_text="With groupBy=model.")
    api_key_id = serializers.UUIDField(required=False, allow_null=True, help_text="With groupBy=apiKey.")

    def to_representation(self, instance: SummaryRow) -> dict[str, object]:
        data = {key: _key(value) for key, value in summary_row_keys(instance).items()}
        return {**data, **UsageFiguresSerializer[Figures](instance.figures).data}


class UsageSummarySerializer(serializers.Serializer[object]):
    def get_fields(self) -> _Fields:
        return {
            "from": serializers.DateTimeField(source="start"),
            "to": serializers.DateTimeField(source="end"),
            "group_by": serializers.ListField(child=serializers.ChoiceField(choices=list(DIMENSIONS))),
            "totals": UsageFiguresSerializer(),
            "rows": UsageRowSerializer(many=True),
        }


type RowKey = date | uuid.UUID | str | None


def summary_row_keys(row: SummaryRow) -> dict[str, RowKey]:
    """The row's keys under their JSON names (snake_case; the renderer camelizes)."""
    return {DIMENSIONS[dimension][0]: value for dimension, value in row.keys.items()}


def _key(value: RowKey) -> str | None:
    if isinstance(value, date | uuid.UUID):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    return value

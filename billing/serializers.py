from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from billing.models import BudgetAlert, Circuit, CreditPackage, LedgerEntry, ModelRate
from core.fields import CreditField
from orgs.fields import OrgRelatedField


class BalanceSerializer(serializers.Serializer):
    balance = CreditField()
    reserved = CreditField()
    available = CreditField()
    monthly_budget = CreditField(allow_null=True)
    spent_this_period = CreditField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    low_balance_threshold = CreditField(allow_null=True)


class LedgerEntrySerializer(serializers.ModelSerializer):
    amount = CreditField()
    balance_after = CreditField()
    model = serializers.CharField(allow_null=True)

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
            "description",
            "created_at",
        ]

    def to_representation(self, instance: LedgerEntry) -> dict:
        data = super().to_representation(instance)
        data["model"] = instance.model or None
        return data


class ModelRateSerializer(serializers.ModelSerializer):
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


class CreditPackageSerializer(serializers.ModelSerializer):
    credits = CreditField()

    class Meta:
        model = CreditPackage
        fields = ["id", "name", "credits", "price_cents", "currency"]


class GrantSerializer(serializers.Serializer):
    amount = CreditField(required=False, min_value=Decimal("0.000001"))
    package_id = serializers.PrimaryKeyRelatedField(
        queryset=CreditPackage.objects.filter(active=True), required=False, source="package"
    )
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        if ("amount" in attrs) == ("package" in attrs):
            raise serializers.ValidationError({"amount": ["Give either amount or packageId."]})
        return attrs


class CapacitySpecialistSerializer(serializers.Serializer):
    specialist_id = serializers.UUIDField()
    name = serializers.CharField()
    credits = CreditField()


class CapacityModelSerializer(serializers.Serializer):
    model = serializers.CharField()
    credits = CreditField()


class CapacitySerializer(serializers.Serializer):
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


class AlertSerializer(serializers.ModelSerializer):
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


class AcknowledgeSerializer(serializers.Serializer):
    alert_ids = serializers.ListField(
        child=OrgRelatedField(model=BudgetAlert), required=False, help_text="Alerts of this organization."
    )
    all = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("all") and not attrs.get("alert_ids"):
            raise serializers.ValidationError({"alert_ids": ["Give alertIds or all: true."]})
        return attrs


class AcknowledgeResponseSerializer(serializers.Serializer):
    acknowledged = serializers.IntegerField()


class CircuitSerializer(serializers.ModelSerializer):
    reason = serializers.SerializerMethodField()

    class Meta:
        model = Circuit
        fields = ["state", "reason", "opened_at", "opened_by"]

    def get_reason(self, circuit: Circuit) -> str | None:
        return circuit.reason or None


class CircuitToggleSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Circuit.State.choices, required=False)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

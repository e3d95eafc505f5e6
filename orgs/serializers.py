from __future__ import annotations

from rest_framework import serializers

from leancore.api.fields import CreditField
from orgs.models import Membership, Organization, Role


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "role", "billing_email", "created_at"]

    def get_role(self, org: Organization) -> str | None:
        roles: dict = self.context.get("roles", {})
        return roles.get(org.pk)


class OrganizationDetailSerializer(OrganizationSerializer):
    member_count = serializers.IntegerField(read_only=True)
    monthly_budget = CreditField(allow_null=True)
    low_balance_threshold = CreditField(allow_null=True)

    class Meta(OrganizationSerializer.Meta):
        fields = [*OrganizationSerializer.Meta.fields, "member_count", "monthly_budget", "low_balance_threshold"]


class OrganizationUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    monthly_budget = CreditField(required=False, allow_null=True, min_value=0)
    low_balance_threshold = CreditField(required=False, allow_null=True, min_value=0)


class BillingEmailSerializer(serializers.Serializer):
    billing_email = serializers.EmailField()


class MemberSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="user.id", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "status", "joined_at"]


class InviteSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ProfileSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150, allow_blank=True)

from __future__ import annotations

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import User
from core.credits import credit_str
from core.fields import CreditField
from core.serializers import PlainReadModelSerializer
from orgs import selectors
from orgs.models import Membership, Organization, Role, shown_email, shown_name

_UNLISTED: str = "\x00unlisted"  # an organization read without the list's role annotation


class OrganizationSerializer(PlainReadModelSerializer[Organization]):
    pages_read_as_rows = True
    page_annotations = {"role": (selectors.MEMBER_ROLE, "text")}  # the list's rows carry the caller's role
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "role", "billing_email", "created_at"]

    def get_role(self, org: Organization) -> str | None:
        # the caller's role: a list's annotation (``selectors.MEMBER_ROLE``), else the context's
        listed: str | None = getattr(org, selectors.MEMBER_ROLE, _UNLISTED)
        if listed is not _UNLISTED:
            return listed
        roles: dict[uuid.UUID, str] = self.context.get("roles", {})
        return roles.get(org.pk)


class OrganizationDetailSerializer(OrganizationSerializer):
    member_count = serializers.IntegerField(read_only=True)
    monthly_budget = CreditField(allow_null=True)
    low_balance_threshold = CreditField(allow_null=True)

    class Meta(OrganizationSerializer.Meta):
        fields = [*OrganizationSerializer.Meta.fields, "member_count", "monthly_budget", "low_balance_threshold"]


class OrganizationUpdateSerializer(serializers.Serializer[object]):
    name = serializers.CharField(max_length=200)
    monthly_budget = CreditField(required=False, allow_null=True, min_value=0)
    low_balance_threshold = CreditField(required=False, allow_null=True, min_value=0)


class BillingEmailSerializer(serializers.Serializer[object]):
    billing_email = serializers.EmailField()


class MemberSerializer(PlainReadModelSerializer[Membership]):
    """A member; until an invitation is accepted, its own email and name (never the account's).
    ``spentThisPeriod`` comes from the context: ``spend`` ({user id: credits}, the page's members
    read in one query) and ``viewer`` (a member caller's own user id: others' spend is null; None for
    a caller who sees everyone's)."""

    pages_read_as_rows = True  # the members list reads each account's email and name beside its rows
    id = serializers.UUIDField(source="user_id", read_only=True)
    email = serializers.SerializerMethodField()
    name = serializers.SerializerMethodField()
    monthly_credit_limit = CreditField(
        allow_null=True, read_only=True, help_text="The member's monthly credit cap (null: none)."
    )
    spent_this_period = serializers.SerializerMethodField(
        help_text=(
            "What the member's turns cost this period (the calendar month in UTC); null for another "
            "member when the caller is a `member` (per-person spend is private to the person and the admins)."
        )
    )

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "status", "joined_at", "monthly_credit_limit", "spent_this_period"]

    @extend_schema_field(OpenApiTypes.EMAIL)
    def get_email(self, membership: Membership) -> str:
        if isinstance(membership, Membership):
            return membership.shown_email
        return shown_email(  # a page's row: the account's email is a column of the list's query
            status=membership.status, invited_email=membership.invited_email, account_email=membership.account_email
        )

    @extend_schema_field(OpenApiTypes.STR)
    def get_name(self, membership: Membership) -> str:
        if isinstance(membership, Membership):
            return membership.shown_name
        return shown_name(
            status=membership.status, invited_name=membership.invited_name, account_name=membership.account_name
        )

    @extend_schema_field(CreditField(allow_null=True))
    def get_spent_this_period(self, membership: Membership) -> str | None:
        viewer = self.context.get("viewer")
        if viewer is not None and viewer != membership.user_id:
            return None
        spent = self.context.get("spend", {}).get(membership.user_id)
        return None if spent is None else credit_str(spent)


class QuotaSerializer(serializers.Serializer[object]):
    monthly_credit_limit = CreditField(
        allow_null=True, min_value=0, help_text="The member's monthly credit cap; null removes it."
    )


class InviteSerializer(serializers.Serializer[object]):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class RoleSerializer(serializers.Serializer[object]):
    role = serializers.ChoiceField(choices=Role.choices)


class ProfileSerializer(serializers.Serializer[object]):
    name = serializers.CharField(max_length=150, allow_blank=True)


# --- signing in: who you are and where you belong ---------------------------------------------


class MembershipBriefSerializer(serializers.Serializer[object]):
    id = serializers.UUIDField(source="organization.id")
    name = serializers.CharField(source="organization.name")
    role = serializers.CharField()


class MeSerializer(serializers.ModelSerializer[User]):
    is_staff = serializers.BooleanField(read_only=True)
    organizations = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "name", "is_staff", "organizations"]

    @extend_schema_field(MembershipBriefSerializer(many=True))
    def get_organizations(self, user: User) -> list[dict[str, object]]:
        briefs = MembershipBriefSerializer(selectors.active_memberships(user=user), many=True)
        return briefs.data  # type: ignore[return-value]  # many=True: a list (the stubs type every .data a dict)


class TokenResponseSerializer(serializers.Serializer[object]):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")
    user = MeSerializer()


class AcceptInviteSerializer(serializers.Serializer[object]):
    """Signed out (a new account): ``{token, password, name?}``. Signed in as the invited account:
    ``{token}``."""

    token = serializers.CharField()
    password = serializers.CharField(
        trim_whitespace=False, required=False, help_text="Required unless signed in as the invited account."
    )
    name = serializers.CharField(max_length=150, allow_blank=True, required=False, default="")


class AcceptInviteNewSerializer(serializers.Serializer[object]):
    token = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False)
    name = serializers.CharField(max_length=150, allow_blank=True, required=False)


class AcceptInviteSignedInSerializer(serializers.Serializer[object]):
    token = serializers.CharField(help_text="Sent with the invited account's own access token.")


class OrganizationBriefSerializer(serializers.Serializer[object]):
    id = serializers.UUIDField()
    name = serializers.CharField()


class JoinedSerializer(serializers.Serializer[object]):
    """An existing account accepted (a membership): the organization joined and the role there."""

    organization = OrganizationBriefSerializer()
    role = serializers.CharField()


class RegisterSerializer(serializers.Serializer[object]):
    organization_name = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False)


def token_body(*, user: User, access: str, refresh: str, expires_in: int) -> dict[str, object]:
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "user": MeSerializer(user).data,
    }

from __future__ import annotations

import uuid

from django.db.models import OuterRef, QuerySet, Subquery
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.auth import current_user
from accounts.models import User
from core.errors import RateLimitedError
from core.pagination import listed_page
from core.throttles import InviteThrottle
from core.views import UserViewSet
from orgs import selectors, services
from orgs.api import OrgAPIView, OrgViewSet
from orgs.errors import AlreadyMemberError, LastOwnerError
from orgs.filters import SHOWN_ORDERING, MemberFilter
from orgs.models import Membership, Organization, Role
from orgs.serializers import (
    BillingEmailSerializer,
    InviteSerializer,
    MemberSerializer,
    OrganizationDetailSerializer,
    OrganizationSerializer,
    OrganizationUpdateSerializer,
    ProfileSerializer,
    QuotaSerializer,
    RoleSerializer,
)


class OrganizationListView(mixins.ListModelMixin, UserViewSet[Organization]):
    serializer_class = OrganizationSerializer
    queryset = Organization.objects.none()  # for the schema; the real one is per caller

    def get_queryset(self) -> QuerySet[Organization]:
        if getattr(self, "swagger_fake_view", False):
            return Organization.objects.none()
        return selectors.organizations_for(user=current_user(self.request))

    def count_page_rows(self, queryset: QuerySet[Organization]) -> int | None:
        """The page's ``count`` (``core.pagination``): the list takes no filter, so it is the caller's
        active memberships."""
        return selectors.organization_count_for(user=current_user(self.request))

    @extend_schema(summary="The caller's organizations (staff: all)")
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().list(request, *args, **kwargs)


def _detail(view: OrgAPIView) -> dict[str, object]:
    org = selectors.organization_detail(org=view.org)
    return OrganizationDetailSerializer(org, context={"roles": {org.pk: view.org_context.role}}).data


class OrganizationDetailView(OrgAPIView):
    org_path_kwarg = "pk"
    required_roles = {"put": Role.ADMIN}

    @extend_schema(responses={200: OrganizationDetailSerializer}, summary="One organization")
    def get(self, request: Request, pk: uuid.UUID) -> Response:
        return Response(_detail(self))

    @extend_schema(
        request=OrganizationUpdateSerializer,
        responses={200: OrganizationDetailSerializer},
        summary="Update the organization (admin)",
    )
    def put(self, request: Request, pk: uuid.UUID) -> Response:
        serializer = OrganizationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.update_organization(org=self.org, **serializer.validated_data)
        return Response(_detail(self))


class BillingEmailView(OrgAPIView):
    org_path_kwarg = "pk"
    required_roles = {"patch": Role.ADMIN}

    @extend_schema(
        request=BillingEmailSerializer,
        responses={200: OrganizationDetailSerializer},
        summary="Set the billing email (admin)",
    )
    def patch(self, request: Request, pk: uuid.UUID) -> Response:
        serializer = BillingEmailSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.set_billing_email(org=self.org, billing_email=serializer.validated_data["billing_email"])
        return Response(_detail(self))


def _member_context(view: OrgAPIView | OrgViewSet[Membership], memberships: list[Membership]) -> dict[str, object]:
    """What ``MemberSerializer`` shows of spend: everyone's for admins (and staff), only their own
    for a member (others' null), read for all of ``memberships`` in one query."""
    context = view.org_context
    sees_all = context.has_role(Role.ADMIN)
    viewer = None if sees_all else (context.user.pk if context.user is not None else uuid.UUID(int=0))
    user_ids = [m.user_id for m in memberships if viewer is None or m.user_id == viewer]
    return {"viewer": viewer, "spend": selectors.spent_this_period(org_id=context.org.pk, user_ids=user_ids)}


def _member_body(view: OrgAPIView, membership: Membership) -> dict[str, object]:
    return MemberSerializer(membership, context=_member_context(view, [membership])).data


def _account_column(name: str) -> Subquery:
    """A column of each listed membership's account (a correlated read by its primary key)."""
    return Subquery(User.objects.filter(pk=OuterRef("user_id")).order_by().values(name)[:1])  # one row: no sort


@extend_schema_view(
    list=extend_schema(summary="Members of the organization, active and invited"),
)
class MemberListView(mixins.ListModelMixin, OrgViewSet[Membership]):
    """Members of the organization (active and invited)."""

    serializer_class = MemberSerializer
    # each account's email and name beside the membership's columns, read for the page's rows only (the
    # count joins no account): a page is read as rows, no model built
    queryset = Membership.objects.annotate(
        account_email=_account_column("email"), account_name=_account_column("name")
    ).order_by("-created_at")
    filterset_class = MemberFilter
    ordering_expressions = SHOWN_ORDERING  # ``ordering=email|name``: as each row shows them

    def get_serializer_context(self) -> dict[str, object]:
        context = dict(super().get_serializer_context())
        if not getattr(self, "swagger_fake_view", False):
            context.update(_member_context(self, listed_page(self)))
        return context


class InviteView(OrgAPIView):
    people_only = frozenset({"post"})
    errors = (AlreadyMemberError, RateLimitedError)
    required_roles = {"post": Role.ADMIN}

    @extend_schema(
        request=InviteSerializer,
        responses={201: MemberSerializer, 200: MemberSerializer},
        summary="Invite someone by email (admin); they join when they accept",
        description=(
            "201 with the pending member (`status: invited`, the invitation's own email and name), the same "
            "whether the address has an account or not; 200 when an already invited email is re-sent a new "
            "token (the old one stops working). An existing account accepts when signed in to that account. "
            "Each invitation sent (re-sends too) counts toward THROTTLE_INVITE per organization and per client "
            "address."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = InviteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        InviteThrottle().check(request, self)  # each one e-mails an outside address in the org's name
        membership, created = services.invite_member(
            context=self.org_context, inviter=current_user(request), **serializer.validated_data
        )
        return Response(
            _member_body(self, membership), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class MemberDetailView(OrgAPIView):
    people_only = frozenset({"put", "delete"})
    errors = {"delete": (LastOwnerError,)}

    @extend_schema(
        responses={200: MemberSerializer},
        summary="One member",
    )
    def get(self, request: Request, pk: uuid.UUID) -> Response:
        return Response(_member_body(self, services.get_member(org=self.org, user_id=pk)))

    @extend_schema(
        request=ProfileSerializer,
        responses={200: MemberSerializer},
        summary="Update a member's name (admin, or yourself)",
    )
    def put(self, request: Request, pk: uuid.UUID) -> Response:
        services.get_member(org=self.org, user_id=pk)  # an unknown member is a 404 before any validation
        serializer = ProfileSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.update_member_profile(
            context=self.org_context, actor=current_user(request), user_id=pk, name=serializer.validated_data["name"]
        )
        return Response(_member_body(self, membership))

    @extend_schema(
        responses={204: OpenApiResponse(description="Removed.")},
        summary="Remove a member or revoke an invitation (admin, or yourself to leave)",
    )
    def delete(self, request: Request, pk: uuid.UUID) -> Response:
        services.remove_member(context=self.org_context, actor=current_user(request), user_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberRoleView(OrgAPIView):
    people_only = frozenset({"patch"})
    errors = (LastOwnerError,)
    required_roles = {"patch": Role.ADMIN}

    @extend_schema(
        request=RoleSerializer,
        responses={200: MemberSerializer},
        summary="Change a member's role (admin; granting or revoking owner needs an owner)",
    )
    def patch(self, request: Request, pk: uuid.UUID) -> Response:
        services.get_member(org=self.org, user_id=pk)  # an unknown member is a 404 before any validation
        serializer = RoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.change_role(context=self.org_context, user_id=pk, role=serializer.validated_data["role"])
        return Response(_member_body(self, membership))


class MemberQuotaView(OrgAPIView):
    people_only = frozenset({"patch"})
    required_roles = {"patch": Role.ADMIN}

    @extend_schema(
        request=QuotaSerializer,
        responses={200: MemberSerializer},
        summary="Set a member's monthly credit cap (admin; an admin's own or an owner's needs an owner)",
    )
    def patch(self, request: Request, pk: uuid.UUID) -> Response:
        services.get_member(org=self.org, user_id=pk)  # an unknown member is a 404 before any validation
        serializer = QuotaSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.set_member_quota(
            context=self.org_context,
            actor=current_user(request),
            user_id=pk,
            monthly_credit_limit=serializer.validated_data["monthly_credit_limit"],
        )
        return Response(_member_body(self, membership))

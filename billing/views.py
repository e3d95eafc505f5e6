from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.auth import current_user
from accounts.idempotency import IDEMPOTENCY_HEADER, run_idempotent
from billing import selectors, services
from billing.filters import AlertFilter, LedgerFilter, ModelRateFilter
from billing.models import BudgetAlert, LedgerEntry
from billing.serializers import (
    AcknowledgeResponseSerializer,
    AcknowledgeSerializer,
    AlertSerializer,
    BalanceSerializer,
    CapacitySerializer,
    CircuitSerializer,
    CircuitToggleSerializer,
    CreditPackageSerializer,
    GrantSerializer,
    LedgerEntrySerializer,
    ModelRateSerializer,
)
from core.errors import IdempotencyKeyReusedError, PermissionDeniedError
from core.views import UserViewSet
from orgs.api import OrgAPIView, OrgViewSet
from orgs.models import Role

GRANT_PERMISSION = "billing.manage_credits"


class BalanceView(OrgAPIView):
    @extend_schema(responses={200: BalanceSerializer}, summary="Credit balance, holds and this period's spend")
    def get(self, request: Request) -> Response:
        return Response(BalanceSerializer(selectors.balance(org=self.org)).data)


@extend_schema_view(
    list=extend_schema(
        summary="The credit ledger: usage, grants, refunds and adjustments",
        description=(
            "Newest first; usage entries are negative. Filter by `kind`, `specialistId`, `model` and a `from`/`to` "
            "date or time."
        ),
    ),
)
class UsageView(mixins.ListModelMixin, OrgViewSet):
    """The ledger: usage (negative), grants, refunds and adjustments, newest first."""

    queryset = LedgerEntry.objects.all()
    serializer_class = LedgerEntrySerializer
    filterset_class = LedgerFilter
    ordering_fields = ["created_at", "amount"]
    ordering = ["-created_at"]


@extend_schema_view(
    list=extend_schema(
        summary="Model rates: credits per million input and output tokens",
        description="Every rate, active or not; a specialist's model must be an active one.",
    ),
)
class ModelRateListView(mixins.ListModelMixin, UserViewSet):
    """Every rate, active or not (a specialist's model must be an active one); by model."""

    queryset = selectors.all_rates()
    serializer_class = ModelRateSerializer
    filterset_class = ModelRateFilter


@extend_schema_view(
    list=extend_schema(
        summary="Credit packages that can be bought",
    ),
)
class PackageListView(mixins.ListModelMixin, UserViewSet):
    queryset = selectors.packages()
    serializer_class = CreditPackageSerializer


class GrantView(OrgAPIView):
    errors = (IdempotencyKeyReusedError,)
    operator_writes = frozenset({"post"})  # staff grant in any org, with the permission below

    @extend_schema(
        request=GrantSerializer,
        responses={201: LedgerEntrySerializer},
        parameters=[IDEMPOTENCY_HEADER],
        summary="Grant credits to the organization (platform staff)",
    )
    def post(self, request: Request) -> Response:
        user = current_user(request)
        if not (user.is_staff and user.has_perm(GRANT_PERMISSION)):
            raise PermissionDeniedError(
                f"Only platform staff with the {GRANT_PERMISSION} permission may grant credits."
            )
        serializer = GrantSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def action() -> tuple[int, dict]:
            entry = services.grant_credits(
                org=self.org,
                amount=data.get("amount"),
                package=data.get("package"),
                reason=data["reason"],
                actor=current_user(request),
            )
            return status.HTTP_201_CREATED, dict(LedgerEntrySerializer(entry).data)

        (code, body), _ = run_idempotent(
            user=current_user(request),
            scope=f"grant:{self.org.pk}",
            key=request.headers.get("Idempotency-Key"),
            payload=request.data,
            action=action,
        )
        return Response(body, status=code)


class CapacityView(OrgAPIView):
    @extend_schema(responses={200: CapacitySerializer}, summary="Burn rate, runway and where the credits go")
    def get(self, request: Request) -> Response:
        return Response(CapacitySerializer(selectors.capacity(org=self.org)).data)


@extend_schema_view(
    list=extend_schema(
        summary="Budget, low-balance and circuit alerts of the organization",
        description="Filter `acknowledged=true|false`.",
    ),
)
class AlertListView(mixins.ListModelMixin, OrgViewSet):
    queryset = BudgetAlert.objects.all()
    serializer_class = AlertSerializer
    filterset_class = AlertFilter


class AcknowledgeView(OrgAPIView):
    required_roles = {"post": Role.ADMIN}

    @extend_schema(
        request=AcknowledgeSerializer,
        responses={200: AcknowledgeResponseSerializer},
        summary="Acknowledge alerts (admin)",
    )
    def post(self, request: Request) -> Response:
        serializer = AcknowledgeSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        alerts = serializer.validated_data.get("alert_ids") or []  # each looked up in this org only
        count = services.acknowledge_alerts(
            org=self.org,
            user=current_user(request),
            alert_ids=[alert.pk for alert in alerts],
            all_=serializer.validated_data["all"],
        )
        return Response({"acknowledged": count})


class CircuitView(OrgAPIView):
    @extend_schema(responses={200: CircuitSerializer}, summary="The organization's spending circuit breaker")
    def get(self, request: Request) -> Response:
        return Response(CircuitSerializer(selectors.circuit(org=self.org)).data)


class CircuitToggleView(OrgAPIView):
    required_roles = {"post": Role.ADMIN}

    @extend_schema(
        request=CircuitToggleSerializer,
        responses={200: CircuitSerializer},
        summary="Open or close the circuit (admin); without state it flips",
    )
    def post(self, request: Request) -> Response:
        serializer = CircuitToggleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        circuit = services.set_circuit(
            org=self.org,
            actor=current_user(request),
            state=serializer.validated_data.get("state"),
            reason=serializer.validated_data["reason"],
        )
        return Response(CircuitSerializer(circuit).data)

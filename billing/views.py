from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import ListSerializer
from rest_framework.settings import api_settings

from accounts.auth import current_user
from accounts.idempotency import IDEMPOTENCY_HEADER, Result, run_idempotent
from billing import selectors, services, usage
from billing.filters import AlertFilter, LedgerFilter, ModelRateFilter
from billing.models import BudgetAlert, CreditPackage, LedgerEntry, ModelRate
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
    UsageRowSerializer,
    UsageSummaryQuerySerializer,
    UsageSummarySerializer,
)
from billing.usage import DIMENSIONS, SummaryRow
from core.csv_stream import CHUNK_ROWS, CSV_MEDIA_TYPE, Chunk, CSVRenderer, csv_response, csv_schema_response, wants_csv
from core.errors import IdempotencyKeyReusedError, PermissionDeniedError, camelize_key
from core.views import UserViewSet
from orgs.api import OrgAPIView, OrgViewSet
from orgs.models import Role

GRANT_PERMISSION = "billing.manage_credits"


class BalanceView(OrgAPIView):
    @extend_schema(responses={200: BalanceSerializer}, summary="Credit balance, holds and this period's spend")
    def get(self, request: Request) -> Response:
        return Response(BalanceSerializer(selectors.balance(org=self.org)).data)


RENDERERS_AND_CSV: list[type[BaseRenderer]] = [*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer]  # type: ignore[list-item]  # classes, not names


@extend_schema_view(
    list=extend_schema(
        summary="The credit ledger: usage, grants, refunds and adjustments",
        description=(
            "Newest first; usage entries are negative. Filter by `kind`, `specialistId`, `model`, `userId`, `apiKeyId` "
            "and a `from`/`to` date or time. A `member` (a person or a member key) sees only their own usage "
            "entries (and the organization's "
            "grants, refunds and adjustments). With `Accept: text/csv` every matching entry (not one page), newest "
            "first, is streamed as CSV: a header row of the JSON field names, then one row per entry "
            "(`Content-Disposition: attachment`); a cell that starts like a spreadsheet formula is prefixed "
            "with `'`."
        ),
        responses={
            (200, "application/json"): LedgerEntrySerializer(many=True),
            (200, CSV_MEDIA_TYPE): csv_schema_response("Every matching entry, streamed."),
        },
    ),
)
class UsageView(mixins.ListModelMixin, OrgViewSet[LedgerEntry]):
    """The ledger: usage (negative), grants, refunds and adjustments, newest first."""

    queryset = LedgerEntry.objects.all()
    serializer_class = LedgerEntrySerializer
    filterset_class = LedgerFilter
    ordering_fields = ["created_at", "amount"]
    ordering = ["-created_at"]
    renderer_classes = RENDERERS_AND_CSV

    def scope_queryset(self, queryset: QuerySet[LedgerEntry]) -> QuerySet[LedgerEntry]:
        return usage.visible_ledger(queryset, context=self.org_context)

    def list(self, request: Request, *args: object, **kwargs: object) -> HttpResponseBase:  # type: ignore[override]  # a CSV stream too
        if not wants_csv(request):
            return super().list(request, *args, **kwargs)
        entries = self.filter_queryset(self.get_queryset())
        fields = list(LedgerEntrySerializer().fields)

        def read(after: usage.LedgerCursor | None) -> Chunk[LedgerEntry, usage.LedgerCursor]:
            return usage.ledger_chunk(entries, after=after, size=CHUNK_ROWS)

        def rows(chunk: Sequence[LedgerEntry]) -> list[list[object]]:
            return [[row[name] for name in fields] for row in LedgerEntrySerializer(chunk, many=True).data]

        header = [camelize_key(name) for name in fields]
        return csv_response(request, filename="ledger.csv", header=header, read=read, rows=rows)


@extend_schema_view(
    list=extend_schema(
        summary="Model rates: credits per million input and output tokens",
        description="Every rate, active or not; a specialist's model must be an active one.",
    ),
)
class ModelRateListView(mixins.ListModelMixin, UserViewSet[ModelRate]):
    """Every rate, active or not (a specialist's model must be an active one); by model."""

    allows_api_keys = True  # a catalogue a program may read with its key

    queryset = selectors.all_rates()
    serializer_class = ModelRateSerializer
    filterset_class = ModelRateFilter


@extend_schema_view(
    list=extend_schema(
        summary="Credit packages that can be bought",
    ),
)
class PackageListView(mixins.ListModelMixin, UserViewSet[CreditPackage]):
    allows_api_keys = True  # a catalogue a program may read with its key
    queryset = selectors.packages()
    serializer_class = CreditPackageSerializer


class GrantView(OrgAPIView):
    people_only = frozenset({"post"})
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

        def action() -> Result[dict[str, object]]:
            entry = services.grant_credits(
                org=self.org,
                amount=data.get("amount"),
                package=data.get("package"),
                reason=data["reason"],
                actor=current_user(request),
            )
            return status.HTTP_201_CREATED, dict(LedgerEntrySerializer(entry).data)

        (code, body), _ = run_idempotent(
            caller=self.principal.caller_id,
            user=user,
            scope=f"grant:{self.org.pk}",
            key=request.headers.get("Idempotency-Key"),
            payload=request.data,
            action=action,
        )
        return Response(body, status=code)


@extend_schema(
    parameters=[
        OpenApiParameter("from", OpenApiTypes.DATETIME, description="Inclusive; default: this period's start."),
        OpenApiParameter("to", OpenApiTypes.DATETIME, description="Exclusive; default: this period's end."),
        OpenApiParameter(
            "groupBy",
            str,
            required=True,
            description="One or two of `day`, `member`, `specialist`, `model`, `apiKey`, comma-separated.",
        ),
    ],
    responses={
        (200, "application/json"): UsageSummarySerializer,
        (200, CSV_MEDIA_TYPE): csv_schema_response("The rows (no totals line), streamed."),
    },
    summary="Usage by day, member, specialist, model or API key",
    description=(
        "What the organization's model calls cost in [`from`, `to`) (default: this period; at most 400 days), "
        "grouped by one or two dimensions: usage only (no grants), credits positive, rows ordered by credits "
        "descending (by day ascending when grouped by `day`, days in UTC), each row's figures summing exactly "
        "to `totals`. A group with no usage has no row; usage with no value for a dimension (a key's turns "
        "grouped by `member`) is a row whose key is null. A `member` sees only their own usage (the totals "
        "are theirs). With `Accept: text/csv` the rows are streamed as CSV with a header row of the JSON "
        "field names and no totals line."
    ),
)
class UsageSummaryView(OrgAPIView):
    renderer_classes = RENDERERS_AND_CSV

    def get(self, request: Request) -> HttpResponseBase:
        params = request.query_params
        query = UsageSummaryQuerySerializer(
            data={key: params[param] for key, param in SUMMARY_PARAMS.items() if param in params}
        )
        query.is_valid(raise_exception=True)
        found = usage.summary(org=self.org, context=self.org_context, **query.validated_data)
        if not wants_csv(request):
            return Response(UsageSummarySerializer(found).data)
        keys = [DIMENSIONS[dimension][0] for dimension in found.group_by]
        fields = [*keys, "credits", "calls", "input_tokens", "output_tokens"]
        shown = ListSerializer[Sequence[SummaryRow]](found.rows, child=UsageRowSerializer()).data  # as many=True
        rows = [[row[name] for name in fields] for row in shown]

        def read(at: int | None) -> Chunk[Sequence[object], int]:
            start = at or 0
            end = start + CHUNK_ROWS
            return rows[start:end], (end if end < len(rows) else None)

        header = [camelize_key(name) for name in fields]
        return csv_response(request, filename="usage-summary.csv", header=header, read=read)


SUMMARY_PARAMS = {"from": "from", "to": "to", "group_by": "groupBy"}


class CapacityView(OrgAPIView):
    @extend_schema(responses={200: CapacitySerializer}, summary="Burn rate, runway and where the credits go")
    def get(self, request: Request) -> Response:
        return Response(
            CapacitySerializer(
                selectors.capacity(org=self.org, specialist_ids=self.org_context.allowed_specialist_ids)
            ).data
        )


@extend_schema_view(
    list=extend_schema(
        summary="Budget, low-balance and circuit alerts of the organization",
        description="Filter `acknowledged=true|false`.",
    ),
)
class AlertListView(mixins.ListModelMixin, OrgViewSet[BudgetAlert]):
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
            user=self.org_context.user,  # None for an org API key
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
            actor=self.org_context.user,  # None for an org API key
            by=f"the API key {key.name!r}" if (key := self.org_context.api_key) is not None else None,
            state=serializer.validated_data.get("state"),
            reason=serializer.validated_data["reason"],
        )
        return Response(CircuitSerializer(circuit).data)

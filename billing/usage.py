"""Usage analytics: what the org's model calls cost, grouped by day, member, specialist, model or
API key, computed by the database in one grouped query; and the ledger read in keyset chunks for
the CSV export. Per-person spend is private: a ``member`` caller (a person or a key) sees only their
own usage."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import NullIf, TruncDate

from billing.models import LedgerEntry
from orgs.context import OrgContext
from orgs.models import Organization, Role

MAX_DAYS = 400


# groupBy value → (the row's key, how the database computes it). Usage with no value for a
# dimension (a key's turns by member, a call with no specialist) is grouped under NULL.
DIMENSIONS: dict[str, tuple[str, Combinable]] = {
    "day": ("day", TruncDate("created_at", tzinfo=UTC)),
    "member": ("user_id", F("user_id")),
    "specialist": ("specialist_id", F("specialist_id")),
    "model": ("model", NullIf(F("model"), Value(""))),
    "apiKey": ("api_key_id", F("api_key_id")),
}


def sees_all_usage(context: OrgContext) -> bool:
    """Admins, owners and platform staff see everyone's usage; a member only their own."""
    return context.has_role(Role.ADMIN)


def _own_usage(context: OrgContext) -> Q | None:
    """None for a caller who sees all of the org's usage; else the usage it may see: a member's own, a
    member API key's own (its turns), and for a key limited to some specialists, theirs only."""
    own = Q()
    if not sees_all_usage(context):
        if context.api_key is not None:
            own &= Q(api_key_id=context.api_key.pk)
        elif context.user_id is not None:
            own &= Q(user_id=context.user_id)
        else:
            return Q(pk__in=[])
    allowed = context.allowed_specialist_ids
    if allowed is not None:
        own &= Q(specialist_id__in=allowed)
    return own if own else None


def visible_ledger(queryset: QuerySet[LedgerEntry], *, context: OrgContext) -> QuerySet[LedgerEntry]:
    """The ledger a caller may read: everything for admins; for a member (or a member key), their own
    usage entries and the org's grants, refunds and adjustments; for a key limited to some
    specialists, none of the other specialists' usage."""
    own = _own_usage(context)
    return queryset if own is None else queryset.filter(~Q(kind=LedgerEntry.Kind.USAGE) | own)


def usage_entries(*, org: Organization, context: OrgContext, start: datetime, end: datetime) -> QuerySet[LedgerEntry]:
    """The usage entries in [start, end) the caller may count (a member's: the index of each member's
    usage serves them)."""
    entries = LedgerEntry.objects.for_org(org).filter(
        kind=LedgerEntry.Kind.USAGE, created_at__gte=start, created_at__lt=end
    )
    own = _own_usage(context)
    return entries if own is None else entries.filter(own)


@dataclass(frozen=True, slots=True)
class Figures:
    credits: Decimal
    calls: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class SummaryRow:
    keys: dict[str, date | uuid.UUID | str | None]  # the row's key per groupBy dimension
    figures: Figures


@dataclass(frozen=True, slots=True)
class Summary:
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    totals: Figures
    rows: tuple[SummaryRow, ...]


def _sort_key(row: SummaryRow, group_by: Sequence[str]) -> tuple[object, ...]:
    """By day ascending when grouped by day, then by credits descending; ties by the keys (NULL last)."""
    keys = tuple((row.keys[dimension] is None, str(row.keys[dimension] or "")) for dimension in group_by)
    day = (row.keys["day"],) if "day" in group_by else ()
    return (*day, -row.figures.credits, keys)


def summary(
    *, org: Organization, context: OrgContext, start: datetime, end: datetime, group_by: Sequence[str]
) -> Summary:
    """Usage in [start, end) grouped by one or two dimensions: one grouped query; the totals are the
    sums of its rows, so the rows sum to them exactly."""
    usage = usage_entries(org=org, context=context, start=start, end=end)
    groups = {f"g_{dimension}": DIMENSIONS[dimension][1] for dimension in group_by}
    found = usage.values(**groups).annotate(
        spent=Sum("amount"), calls=Count("id"), tokens_in=Sum("input_tokens"), tokens_out=Sum("output_tokens")
    )
    grouped = cast(list[dict[str, Any]], list(found.order_by()))  # keys named by the groupBy
    rows = [
        SummaryRow(
            keys={dimension: group[f"g_{dimension}"] for dimension in group_by},
            figures=Figures(
                credits=-group["spent"],
                calls=group["calls"],
                input_tokens=group["tokens_in"],
                output_tokens=group["tokens_out"],
            ),
        )
        for group in grouped
    ]
    rows.sort(key=lambda row: _sort_key(row, group_by))
    totals = Figures(
        credits=sum((row.figures.credits for row in rows), Decimal(0)),
        calls=sum(row.figures.calls for row in rows),
        input_tokens=sum(row.figures.input_tokens for row in rows),
        output_tokens=sum(row.figures.output_tokens for row in rows),
    )
    return Summary(start=start, end=end, group_by=tuple(group_by), totals=totals, rows=tuple(rows))


# --- The ledger, in keyset chunks (the CSV export) ----------------------------------------------

type LedgerCursor = tuple[datetime, uuid.UUID]


def ledger_chunk(
    queryset: QuerySet[LedgerEntry], *, after: LedgerCursor | None, size: int
) -> tuple[list[LedgerEntry], LedgerCursor | None]:
    """The next ``size`` entries of ``queryset``, newest first, after the entry ``after`` (keyset on
    (created_at, id): no OFFSET, each chunk as fast as the first); the cursor of the next chunk, or
    None after the last."""
    ordered = queryset.order_by("-created_at", "-id")
    if after is not None:
        created_at, entry_id = after
        # the first bound is what an index can seek to (the OR alone makes PostgreSQL read every newer
        # entry again for each chunk); the second breaks ties between entries of the same instant
        ordered = ordered.filter(created_at__lte=created_at).filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=entry_id)
        )
    entries = list(ordered[:size])
    if len(entries) < size:
        return entries, None
    last = entries[-1]
    return entries, (last.created_at, last.pk)

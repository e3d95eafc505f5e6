"""The ledger of an organization for a month as a CSV, for invoicing."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.http import Http404, HttpResponse
from django.utils import timezone

from billing.admin.ledger import user_emails
from billing.models import LedgerEntry
from core.credits import credit_str, period_bounds
from core.exports import csv_writer
from orgs.models import Organization

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(slots=True)
class _ModelUsage:
    """A model's usage in the month: its tokens and the credits they cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    credits: Decimal = Decimal(0)


def month_bounds(value: str | None) -> tuple[datetime, datetime]:
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
    emails = user_emails(entry.user_id for entry in entries)
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
    usage: dict[str, _ModelUsage] = defaultdict(_ModelUsage)
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
                emails.get(entry.user_id, str(entry.user_id)) if entry.user_id else "",
                entry.api_key_id or "",
                entry.description,
            ]
        )
        totals[entry.kind] += entry.amount
        if entry.kind == LedgerEntry.Kind.USAGE:
            row = usage[entry.model]
            row.input_tokens += entry.input_tokens
            row.output_tokens += entry.output_tokens
            row.credits += -entry.amount
    writer.writerow([])
    writer.writerow(["usage_model", "input_tokens", "output_tokens", "credits"])
    for model in sorted(usage):
        row = usage[model]
        writer.writerow([model, row.input_tokens, row.output_tokens, credit_str(row.credits)])
    writer.writerow([])
    writer.writerow(["total_kind", "amount"])
    for kind in LedgerEntry.Kind.values:
        writer.writerow([kind, credit_str(totals.get(kind, Decimal(0)))])
    return response

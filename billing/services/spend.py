"""What a specialist, a member or an API key has committed this period: its usage plus its open
holds, the figure each of their monthly limits in the refusal order is checked against (the caller
holds the org's account lock, so that one payer's concurrent calls are checked one at a time)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from billing.models import LedgerEntry, PayerSpend, Reservation
from core import db
from core.credits import quantize_credits
from orgs.models import Organization


def specialist_spent(*, org: Organization, specialist_id: uuid.UUID, since: datetime) -> Decimal:
    total = LedgerEntry.objects.filter(
        organization=org, kind=LedgerEntry.Kind.USAGE, specialist_id=specialist_id, created_at__gte=since
    ).aggregate(total=Sum("amount"))["total"]
    return -(total or Decimal(0))


# The payer columns a committed figure is read by: each served by its index of usage by time.
PAYER_COLUMNS = frozenset(payer.value for payer in PayerSpend.Payer)


def committed_sql(column: str, *, org: str, payer: str, since: str, counted: bool = False) -> str:
    """SQL of what the payer ``column = payer`` of the org ``org`` has committed since ``since``: its
    open holds plus its usage (a positive figure). ``org``, ``payer`` and ``since`` are SQL (a
    parameter's placeholder or a column); the one place the figure is written, for a check in Python
    and for the hot path's conditional hold alike. ``counted``: the usage as the settlements counted
    it (``PayerSpend``, one row; ``since`` must then be the start of the budget period, and the
    database PostgreSQL), else summed from the period's entries."""
    if column not in PAYER_COLUMNS:
        raise ValueError(f"Not a payer column: {column}")
    held = (
        f"(SELECT COALESCE(SUM(r.amount), 0) FROM {Reservation._meta.db_table} r "  # noqa: S608
        f"WHERE r.organization_id = {org} AND r.status = '{Reservation.Status.ACTIVE.value}' AND r.{column} = {payer})"
    )
    used = (
        f"(SELECT -COALESCE(SUM(l.amount), 0) FROM {LedgerEntry._meta.db_table} l "  # noqa: S608
        f"WHERE l.organization_id = {org} AND l.kind = '{LedgerEntry.Kind.USAGE.value}' AND l.{column} = {payer} "
        f"AND l.created_at >= {since})"
    )
    if counted:  # a payer without a row this period: from the ledger (nothing, once every settlement counts)
        used = (
            f"COALESCE((SELECT p.spent FROM {PayerSpend._meta.db_table} p WHERE p.organization_id = {org} "  # noqa: S608
            f"AND p.payer = '{column}' AND p.payer_id = {payer} AND p.period_start = {since}), {used})"
        )
    return f"({held} + {used})"


def _committed(*, org: Organization, column: str, payer_id: uuid.UUID, since: datetime) -> Decimal:
    """Usage of the payer ``column = payer_id`` since ``since`` plus its open holds, in one statement."""
    sql = "SELECT " + committed_sql(column, org="%s", payer="%s", since="%s")
    params: list[db.SqlValue] = [org.pk, payer_id, org.pk, payer_id, since]
    (committed,) = db.rows(sql, params, scope=db.InOrg(org.pk))[0].rest()
    return quantize_credits(Decimal(str(committed)))


def specialist_committed(*, org: Organization, specialist_id: uuid.UUID, since: datetime) -> Decimal:
    """What a specialist has committed this period: its usage since ``since`` plus its open holds, in
    one statement (the index of each specialist's entries by time serves the first part)."""
    return _committed(org=org, column="specialist_id", payer_id=specialist_id, since=since)


def member_spent(*, org: Organization, user_id: uuid.UUID, since: datetime) -> Decimal:
    """What a member has committed this period: their usage since ``since`` plus their open holds, in
    one statement (the index of each member's usage serves the first part)."""
    return _committed(org=org, column="user_id", payer_id=user_id, since=since)


def key_spent(*, org: Organization, api_key_id: uuid.UUID, since: datetime) -> Decimal:
    """What the turns started with an API key have committed this period: their usage since ``since``
    plus their open holds, in one statement (the index of each key's usage serves the first part)."""
    return _committed(org=org, column="api_key_id", payer_id=api_key_id, since=since)

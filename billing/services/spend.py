"""What a specialist, a member or an API key has committed this period: its usage plus its open
holds, the figure each of their monthly limits in the refusal order is checked against (the caller
holds the org's account lock, so that one payer's concurrent calls are checked one at a time)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from billing.models import LedgerEntry, Reservation
from core import db
from core.credits import q
from orgs.models import Organization


def open_holds(org: Organization, **filters: object) -> Decimal:
    total = (
        Reservation.objects.for_org(org)
        .filter(status=Reservation.Status.ACTIVE, **filters)
        .aggregate(total=Sum("amount"))["total"]
    )
    return total or Decimal(0)


def specialist_spent(*, org: Organization, specialist_id: uuid.UUID, since: datetime) -> Decimal:
    total = LedgerEntry.objects.filter(
        organization=org, kind=LedgerEntry.Kind.USAGE, specialist_id=specialist_id, created_at__gte=since
    ).aggregate(total=Sum("amount"))["total"]
    return -(total or Decimal(0))


# The payer columns a committed figure is read by: each served by its index of usage by time.
PAYER_COLUMNS = frozenset({"user_id", "api_key_id"})


def _committed(*, org: Organization, column: str, payer_id: uuid.UUID, since: datetime) -> Decimal:
    """Usage of the payer ``column = payer_id`` since ``since`` plus its open holds, in one statement."""
    if column not in PAYER_COLUMNS:
        raise ValueError(f"Not a payer column: {column}")
    sql = (
        f"SELECT COALESCE(SUM(l.amount), 0), (SELECT COALESCE(SUM(r.amount), 0) FROM {Reservation._meta.db_table} r "  # noqa: S608
        f"WHERE r.organization_id = %s AND r.status = %s AND r.{column} = %s) "
        f"FROM {LedgerEntry._meta.db_table} l "
        f"WHERE l.organization_id = %s AND l.kind = %s AND l.{column} = %s AND l.created_at >= %s"
    )
    params = [org.pk, Reservation.Status.ACTIVE, payer_id, org.pk, LedgerEntry.Kind.USAGE, payer_id, since]
    used, held = db.rows(sql, params)[0].rest()
    return q(Decimal(str(held)) - Decimal(str(used)))  # usage amounts are negative


def member_spent(*, org: Organization, user_id: uuid.UUID, since: datetime) -> Decimal:
    """What a member has committed this period: their usage since ``since`` plus their open holds, in
    one statement (the index of each member's usage serves the first part)."""
    return _committed(org=org, column="user_id", payer_id=user_id, since=since)


def key_spent(*, org: Organization, api_key_id: uuid.UUID, since: datetime) -> Decimal:
    """What the turns started with an API key have committed this period: their usage since ``since``
    plus their open holds, in one statement (the index of each key's usage serves the first part)."""
    return _committed(org=org, column="api_key_id", payer_id=api_key_id, since=since)

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from billing.models import LedgerEntry
from leancore import db
from leancore.credits import period_bounds
from specialists.models import Specialist


def specialists_queryset() -> QuerySet[Specialist]:
    return Specialist.objects.alive().prefetch_related("tools").order_by("-created_at")


def alive_with_tool_flag(*, org_id: object, specialist_id: object) -> Specialist | None:
    """One live specialist of the org, and whether it has tools at all (``has_tools``), in one
    hand-written read: a chat turn's hot path."""
    tools = Specialist.tools.through._meta.db_table
    found = db.rows(
        f"SELECT {db.columns(Specialist, 's')}, EXISTS (SELECT 1 FROM {tools} t WHERE t.specialist_id = s.id) "  # noqa: S608
        f"FROM {Specialist._meta.db_table} s WHERE s.organization_id = %s AND s.id = %s AND s.deleted_at IS NULL",
        [org_id, specialist_id],
    )
    if not found:
        return None
    specialist = found[0].take(Specialist)
    specialist.has_tools = bool(found[0].rest()[0])
    return specialist


def usage_this_period(*, specialist: Specialist) -> dict:
    from chat.models import Message

    start, _ = period_bounds(timezone.now())
    spent = LedgerEntry.objects.filter(
        organization_id=specialist.organization_id,
        kind=LedgerEntry.Kind.USAGE,
        specialist_id=specialist.pk,
        created_at__gte=start,
    ).aggregate(total=Sum("amount"))["total"] or Decimal(0)
    messages = Message.objects.filter(
        session__specialist=specialist, role=Message.Role.ASSISTANT, created_at__gte=start
    ).count()
    return {"credits_this_period": -spent, "messages_this_period": messages}

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from billing.models import LedgerEntry
from leancore.credits import period_bounds
from specialists.models import Specialist


def specialists_queryset() -> QuerySet[Specialist]:
    return Specialist.objects.alive().prefetch_related("tools").order_by("-created_at")


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

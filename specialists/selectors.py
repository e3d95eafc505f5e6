from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

from billing.selectors import specialist_usage_this_period
from core import db
from specialists.models import Specialist


def specialists_queryset() -> QuerySet[Specialist]:
    return (
        Specialist.objects.across_orgs("a view's base queryset: for_org scopes it")
        .alive()
        .prefetch_related("tools")
        .order_by("-created_at")
    )


def alive_with_tool_flag(*, org_id: uuid.UUID, specialist_id: uuid.UUID) -> Specialist | None:
    """One live specialist of the org, and whether it has tools at all (``has_tools``), in one
    hand-written read: a chat turn's hot path."""
    tools = Specialist.tools.through._meta.db_table
    found = db.rows(
        f"SELECT {db.columns(Specialist, 's')}, EXISTS (SELECT 1 FROM {tools} t WHERE t.specialist_id = s.id) "  # noqa: S608
        f"FROM {Specialist._meta.db_table} s WHERE s.organization_id = %s AND s.id = %s AND s.deleted_at IS NULL",
        [org_id, specialist_id],
        scope=db.InOrg(org_id),
    )
    if not found:
        return None
    specialist = found[0].take(Specialist)
    specialist.has_tools = bool(found[0].rest()[0])
    return specialist


def tool_ids_by_specialist(*, org_id: uuid.UUID, specialist_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """The tool ids of each of the org's specialists given (a page's), ordered as its ``tools`` are
    (by the tool's name), in one hand-written read: a page of specialists builds no related manager
    per row, nor a query through the ORM."""
    found: dict[uuid.UUID, list[str]] = {}
    if not specialist_ids:
        return found
    links = Specialist.tools.through._meta.db_table
    tools = Specialist.tools.field.related_model._meta.db_table
    among, ids = db.any_of("st.specialist_id", specialist_ids)
    for row in db.rows(
        f"SELECT st.specialist_id, st.tool_id FROM {links} st "  # noqa: S608
        f"JOIN {Specialist._meta.db_table} s ON s.id = st.specialist_id JOIN {tools} t ON t.id = st.tool_id "
        f"WHERE s.organization_id = %s AND {among} ORDER BY t.name",
        [org_id, *ids],
        scope=db.InOrg(org_id),
    ):
        specialist_id, tool_id = row.rest()
        found.setdefault(db.read_uuid(specialist_id), []).append(str(db.read_uuid(tool_id)))
    return found


@dataclass(frozen=True, slots=True)
class UsageThisPeriod:
    """``usage`` of the specialist's page: credits and billed replies this period."""

    credits_this_period: Decimal
    messages_this_period: int


def usage_this_period(*, specialist: Specialist) -> UsageThisPeriod:
    """``usage`` of the specialist's page: credits and billed replies this period (billing's ledger)."""
    usage = specialist_usage_this_period(org_id=specialist.organization_id, specialist_id=specialist.pk)
    return UsageThisPeriod(credits_this_period=usage.credits, messages_this_period=usage.messages)

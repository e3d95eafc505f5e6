from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Prefetch, QuerySet

from accounts.models import User
from chat.models import ChatSession, Message
from orgs.context import OrgContext
from orgs.models import Role


def readable_sessions(queryset: QuerySet[ChatSession], *, context: OrgContext, user: User) -> QuerySet[ChatSession]:
    """A member reads their own sessions; admins and owners (and staff) read all of the org's."""
    if context.has_role(Role.ADMIN):
        return queryset
    return queryset.filter(created_by=user)


def messages_prefetch() -> Prefetch[Any]:
    return Prefetch("messages", queryset=Message.objects.prefetch_related("attachments").order_by("created_at"))


class SessionFilter(django_filters.FilterSet):
    specialistId = django_filters.UUIDFilter(field_name="specialist_id")  # noqa: N815
    workspaceId = django_filters.UUIDFilter(field_name="workspace_id")  # noqa: N815

    class Meta:
        model = ChatSession
        fields: list[str] = []

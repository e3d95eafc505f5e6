from __future__ import annotations

import django_filters
from django.db.models import Prefetch, QuerySet

from chat.models import ChatSession, Message
from orgs.context import OrgContext
from orgs.models import Role


def readable_sessions(queryset: QuerySet[ChatSession], *, context: OrgContext) -> QuerySet[ChatSession]:
    """A member reads their own sessions (a member key, the ones it started); admins and owners
    (and staff) read all of the org's; a key limited to some specialists, only theirs."""
    allowed = context.allowed_specialist_ids
    if allowed is not None:
        queryset = queryset.filter(specialist_id__in=allowed)
    if context.has_role(Role.ADMIN):
        return queryset
    if context.api_key is not None:
        return queryset.filter(created_by_api_key=context.api_key)
    return queryset.filter(created_by=context.user)


def messages_prefetch() -> Prefetch[str, QuerySet[Message]]:
    return Prefetch(
        "messages",
        queryset=Message.objects.across_orgs("prefetched for sessions read in their org")
        .prefetch_related("attachments")
        .order_by("created_at"),
    )


class SessionFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    specialistId = django_filters.UUIDFilter(field_name="specialist_id")  # noqa: N815
    workspaceId = django_filters.UUIDFilter(field_name="workspace_id")  # noqa: N815

    class Meta:
        model = ChatSession
        fields: list[str] = []

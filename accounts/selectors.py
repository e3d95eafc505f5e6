from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from orgs.models import Membership


def active_memberships(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.select_related("organization")
        .filter(user=user, status=Membership.Status.ACTIVE)
        .order_by("organization__name")
    )

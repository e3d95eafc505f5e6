from __future__ import annotations

import django_filters
from django.db.models import Case, F, Q, QuerySet, When

from orgs.models import Membership, Role


class MemberFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no types
    role = django_filters.ChoiceFilter(choices=Role.choices)
    status = django_filters.ChoiceFilter(choices=Membership.Status.choices)
    search = django_filters.CharFilter(method="filter_search", help_text="Name or email contains.")

    class Meta:
        model = Membership
        fields = ["role", "status"]

    def filter_search(self, queryset: QuerySet[Membership], name: str, value: str) -> QuerySet[Membership]:
        """An active member by their account's name or email, a pending invitation by its own."""
        active = Q(status=Membership.Status.ACTIVE) & (Q(user__name__icontains=value) | Q(user__email__icontains=value))
        invited = Q(status=Membership.Status.INVITED) & (
            Q(invited_name__icontains=value) | Q(invited_email__icontains=value)
        )
        return queryset.filter(active | invited)


# ``ordering`` of the members list by ``email`` and ``name`` as the list shows them (``orgs.models``'
# ``shown_email`` and ``shown_name``, in SQL): an invitation's own until it is accepted (its email, or
# the account's when it has none), else the account's (``MemberListView`` reads the account's beside
# each row).
_INVITED = Q(status=Membership.Status.INVITED)
SHOWN_ORDERING = {
    "email": Case(When(_INVITED & ~Q(invited_email=""), then=F("invited_email")), default=F("account_email")),
    "name": Case(When(_INVITED, then=F("invited_name")), default=F("account_name")),
}

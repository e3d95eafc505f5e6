from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from specialists.models import Specialist


class SpecialistFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    status = django_filters.ChoiceFilter(choices=Specialist.Status.choices)
    model = django_filters.CharFilter()
    search = django_filters.CharFilter(method="filter_search", help_text="Name or title contains.")

    class Meta:
        model = Specialist
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet[Specialist], name: str, value: str) -> QuerySet[Specialist]:
        return queryset.filter(Q(name__icontains=value) | Q(title__icontains=value))

"""Shared filters: ISO date-or-datetime bounds and camelCase ordering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time

import django_filters
from django import forms
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Expression, Model, OrderBy, QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from djangorestframework_camel_case.util import camel_to_underscore
from rest_framework import serializers
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.serializers import ModelSerializer
from rest_framework.views import APIView

from core.renderers import camel_key


class DateOrDateTimeField(forms.Field):
    def to_python(self, value: object) -> datetime | None:
        if value in (None, ""):
            return None
        text = str(value).strip().replace(" ", "+")
        try:
            parsed = parse_datetime(text)
        except ValueError:  # well-formed but impossible (month 13, offset over 24 h)
            raise forms.ValidationError("Enter a valid ISO 8601 date or date-time.") from None
        if parsed is None:
            try:
                day = parse_date(text)
            except ValueError:
                raise forms.ValidationError("Enter a valid ISO 8601 date or date-time.") from None
            if day is None:
                raise forms.ValidationError("Enter an ISO 8601 date or date-time.")
            parsed = datetime.combine(day, time.min)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        try:  # an offset like -20:24 is valid ISO 8601 but not for the database: store in UTC
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This date-time cannot be represented in UTC.") from None


class DateOrDateTimeFilter(django_filters.Filter):  # type: ignore[misc]  # django-filter ships no types
    """``from`` is inclusive (gte); ``to``/``dueBefore`` exclusive (lt)."""

    field_class = DateOrDateTimeField


type _RowsSerializer = type[ModelSerializer[Model]]
type _Target = str | Expression  # what a name orders by: a column or annotation, or an expression
UNSORTED_FIELDS = (models.TextField, models.JSONField, models.BinaryField)  # unbounded: no order by them


def _page_serializer(view: APIView) -> _RowsSerializer | None:
    """The serializer of the page a view's action answers when it is another model's than the view's
    (``page_serializers``: a connection's tools, a workspace's files, a webhook's deliveries)."""
    page_serializers: Mapping[str, _RowsSerializer] = getattr(view, "page_serializers", {})
    return page_serializers.get(getattr(view, "action", None) or "")


def _rows_serializer(view: APIView) -> _RowsSerializer:
    page_serializer = _page_serializer(view)
    return page_serializer or view.get_serializer_class()  # type: ignore[attr-defined]  # a list's view


def _shown_as_stored(field: serializers.Field[object, object, object, object]) -> bool:
    """Whether a field's value is shown as it is stored (a DRF field of a column, or one of ours that
    says so with ``orderable``): an order by the column tells nothing the rows do not show. A field
    that transforms what it shows (a URL with its secrets masked) is never an order."""
    declared: bool | None = getattr(field, "orderable", None)
    if declared is not None:
        return declared
    return type(field).__module__.startswith("rest_framework.") and field.source != "*"


def _target(model: type[Model], source: str) -> _Target | None:
    """What ``source`` (a field's source, ``__`` for dots) orders by on ``model``: a relation by its own
    column (not the related model's default order), a column, or an annotation of the list's query;
    None for a model property, a to-many relation or an unbounded column."""
    try:
        field = model._meta.get_field(source.split("__", 1)[0])
    except FieldDoesNotExist:
        return None if isinstance(getattr(model, source, None), property) else source
    if "__" in source:
        return source if field.many_to_one or field.one_to_one else None
    if field.is_relation:
        return getattr(field, "attname", None) if field.many_to_one or field.one_to_one else None
    return None if isinstance(field, UNSORTED_FIELDS) else source


def orderable(view: APIView) -> dict[str, _Target]:
    """{snake_case name of a shown field: what it orders by} for ``view``'s page: its serializer's
    fields shown as stored (those of ``ordering_fields`` when the view names them), and the view's
    ``ordering_expressions`` (a shown value that is no column)."""
    serializer_class = _rows_serializer(view)
    model: type[Model] | None = getattr(getattr(serializer_class, "Meta", None), "model", None)
    if model is None:
        return {}  # not a page of rows of a model
    allowed: Sequence[str] | None = getattr(view, "ordering_fields", None)
    targets: dict[str, _Target] = {}
    for name, field in serializer_class(context={}).fields.items():
        source = field.source.replace(".", "__") if field.source else name
        if field.write_only or not _shown_as_stored(field) or (allowed is not None and source not in allowed):
            continue
        target = _target(model, source)
        if target is not None:
            targets[name] = target
    targets.update(getattr(view, "ordering_expressions", {}))
    return targets


class CamelOrderingFilter(OrderingFilter):
    """``ordering=-createdAt,name``: the camelCase keys of the rows a list shows (``orderable``), each
    with ``-`` for descending, then the primary key (equal values never overlap between pages). A
    page of another model than its view's (``page_serializers``) is ordered by its own fields, and
    only when asked; any other name is ignored."""

    def get_valid_fields(
        self, queryset: QuerySet[Model], view: APIView, context: Mapping[str, object] | None = None
    ) -> list[tuple[str, str]]:
        return [(name, name) for name in orderable(view)]

    def get_default_ordering(self, view: APIView) -> Sequence[str] | None:
        return None if _page_serializer(view) is not None else super().get_default_ordering(view)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, object]]:
        """The ``ordering`` parameter, naming the keys this list can be ordered by."""
        names = ", ".join(f"`{name}`" for name in self.ordering_names(view))
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"Fields to order by, comma-separated, each with `-` first for descending: {names}. "
                "Any other name is ignored (the list keeps its default order); rows of equal values keep one order "
                "across pages.",
                "schema": {"type": "string"},
            }
        ]

    def ordering_names(self, view: APIView) -> list[str]:
        """The camelCase names ``ordering`` accepts on ``view``'s list."""
        names = [camel_key(name)[0] for name in orderable(view)]
        return [name for name in names if camel_key(camel_to_underscore(name))[0] == name]

    def filter_queryset[M: Model, R](self, request: Request, queryset: QuerySet[M, R], view: APIView) -> QuerySet[M, R]:
        page_serializer = _page_serializer(view)
        if page_serializer is None and getattr(view, "detail", False):
            return queryset  # one object's route (``get_object``): no order to apply
        if page_serializer is not None and queryset.model is not page_serializer.Meta.model:
            return queryset  # the object whose page this is (``get_object``): the ordering is the page's
        terms = self.requested_order(request, view)
        if terms:
            return queryset.order_by(*terms, "pk")
        default = self.get_default_ordering(view)
        return queryset.order_by(*default) if default else queryset

    def requested_order(self, request: Request, view: APIView) -> list[str | OrderBy]:
        """The order the ``ordering`` parameter asks for, its names that ``view``'s page can be ordered
        by (``orderable``) in their order; empty when none is."""
        params = request.query_params.get(self.ordering_param, "")
        targets = orderable(view) if params.strip() else {}
        terms: list[str | OrderBy] = []
        for raw in params.split(","):
            term = raw.strip()
            target = targets.get(camel_to_underscore(term.lstrip("-")))
            if target is None:
                continue
            descending = term.startswith("-")
            if isinstance(target, str):
                terms.append(f"-{target}" if descending else target)
            else:
                terms.append(target.desc() if descending else target.asc())
        return terms


def ordered_page[M: Model, R](request: Request, rows: QuerySet[M, R], view: APIView) -> QuerySet[M, R]:
    """A page of another model than the view's (``page_serializers``) in the ``ordering`` asked for,
    as the view's own list is ordered (else in ``rows``' own order)."""
    return CamelOrderingFilter().filter_queryset(request, rows, view)

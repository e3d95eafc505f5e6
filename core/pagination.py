"""The one pagination envelope: {count, next, previous, results} with page/pageSize."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.core.paginator import InvalidPage
from django.db.models import Model, QuerySet
from rest_framework import pagination
from rest_framework.request import Request
from rest_framework.views import APIView

from core.errors import ValidationFailed

if TYPE_CHECKING:  # DRF's generics import this module (the pagination setting): types only
    from rest_framework.generics import GenericAPIView

MAX_PAGE_DIGITS = 9  # a page number beyond this is not a page of anything the API holds


def _whole_number(raw: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts ² and ①, which ``int`` refuses)."""
    return raw.isascii() and raw.isdigit() and len(raw) <= MAX_PAGE_DIGITS


def _page_rows(page: object, view: APIView | None) -> list[object] | None:
    """The page's rows as its serializer reads them when it reads tuples of columns
    (``core.serializers.PlainReadModelSerializer.read_page_rows``), else ``None`` (model instances).
    The serializer is the view's, or the one its ``page_serializers`` names for the action (a page of
    another model than the view's: a connection's tools)."""
    get_serializer_class = getattr(view, "get_serializer_class", None)
    if not isinstance(page, QuerySet) or get_serializer_class is None:
        return None
    page_serializers: dict[str, type] = getattr(view, "page_serializers", {})
    serializer_class = page_serializers.get(getattr(view, "action", None) or "") or get_serializer_class()
    read_page_rows = getattr(serializer_class, "read_page_rows", None)
    return None if read_page_rows is None else read_page_rows(page)


class PageNumberPagination(pagination.PageNumberPagination):
    """``page`` is a whole number from 1 up to the last page (page 1 of an empty list included),
    anything else is 400 naming ``page``; ``pageSize`` is clamped to 1–100 (default 20)."""

    page_size = 20
    page_query_param = "page"
    page_size_query_param = "pageSize"
    max_page_size = 100

    def paginate_queryset[M: Model, R](
        self, queryset: QuerySet[M, R] | Sequence[R], request: Request, view: APIView | None = None
    ) -> list[R]:
        self.request = request
        page_size = self.get_page_size(request)
        paginator = self.django_paginator_class(queryset, page_size)
        count_page_rows = getattr(view, "count_page_rows", None)  # a view that counts its rows more cheaply
        counted = None if count_page_rows is None else count_page_rows(queryset)
        if counted is not None:
            paginator.__dict__["count"] = counted  # Paginator.count is a cached property: its value given
        require_page_parent = getattr(view, "require_page_parent", None)  # a page of one parent's rows
        if require_page_parent is not None and paginator.count == 0:
            require_page_parent()  # 404 when the parent is not the org's (orgs.api: of_parent)
        raw = request.query_params.get(self.page_query_param, "1").strip() or "1"
        if not _whole_number(raw) or int(raw) < 1:
            raise ValidationFailed("page", "A page number is a whole number from 1.")
        try:
            self.page = paginator.page(int(raw))
        except InvalidPage:
            raise ValidationFailed("page", f"Page {int(raw)} is past the last page ({paginator.num_pages}).") from None
        rows = _page_rows(self.page.object_list, view)
        if rows is not None:
            self.page.object_list = rows
        return list(self.page)

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param, "").strip()
        if _whole_number(raw) and int(raw) > 0:
            return min(int(raw), self.max_page_size)
        return self.page_size

    def get_paginated_response_schema(self, schema: dict[str, object]) -> dict[str, object]:
        return {
            "type": "object",
            "required": ["count", "results"],
            "properties": {
                "count": {"type": "integer", "example": 123},
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, object]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "A page number from 1 to the last page; anything else is 400 `validation_error`.",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page (default {self.page_size}); larger values are clamped to "
                f"{self.max_page_size}.",
                "schema": {"type": "integer"},
            },
        ]


def listed_page[M: Model](view: GenericAPIView[M]) -> list[M]:
    """The rows of the page a list view answers with, once ``paginate_queryset`` has run (else none):
    what a list's serializer context reads for the whole page at once."""
    page = getattr(view.paginator, "page", None)
    return list(page) if page is not None else []

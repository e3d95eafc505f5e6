"""The list endpoints of the URLconf: every route whose GET is a viewset's action that answers a page.

Derived, not listed by hand, so that what measures or tests every list (``bench/rest_lists.py``,
``tests/core/test_query_counts.py``) meets a new list endpoint the day it lands.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence

from django.urls import URLPattern, URLResolver, get_resolver

PARAM = re.compile(r"<(?:\w+:)?(\w+)>")  # a path parameter of a route: ``<uuid:org_id>`` → ``org_id``


def _routes(patterns: Sequence[URLPattern | URLResolver], prefix: str = "") -> Iterator[tuple[str, object]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def schema_path(route: str) -> str:
    """A route as the schema names it: ``orgs/<uuid:org_id>/mcps/<uuid:pk>/tools`` →
    ``/orgs/{orgId}/mcps/{id}/tools``."""

    def camel(name: str) -> str:
        head, *rest = ("id" if name == "pk" else name).split("_")
        return "{" + head + "".join(part.title() for part in rest) + "}"

    return "/" + PARAM.sub(lambda match: camel(match.group(1)), route)


@functools.cache
def list_routes() -> dict[str, str]:
    """``{schema path: route}`` of every list endpoint: a viewset route whose GET is an action that
    pages (``list``, ``tools``, ``files``…: anything but ``retrieve``)."""
    found = {}
    for route, callback in _routes(get_resolver().url_patterns):
        actions: dict[str, str] = getattr(callback, "actions", {})
        action = actions.get("get")
        view = getattr(callback, "cls", None)
        if route.endswith("/") or action in (None, "retrieve") or getattr(view, "pagination_class", None) is None:
            continue
        found[schema_path(route)] = route
    return found


def list_url(path: str, *, org_id: object, parent_ids: dict[str, object]) -> str:
    """The URL of the list at ``path`` (a key of ``list_routes``): the org's id for ``org_id``, and
    for any other parameter the id of the parent named by the segment before it (``mcps/{id}/tools``
    → ``parent_ids["mcps"]``)."""
    segments = list_routes()[path].split("/")
    for i, segment in enumerate(segments):
        match = PARAM.fullmatch(segment)
        if match:
            segments[i] = str(org_id if match.group(1) == "org_id" else parent_ids[segments[i - 1]])
    return "/" + "/".join(segments)

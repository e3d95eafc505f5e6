"""The URLconf tried by first segment resolves every path as Django's scan of the same patterns does."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, path, re_path
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RoutePattern

from core.url_index import ANY, IndexedPatterns, first_segments

SAMPLES = {"uuid": str(uuid.UUID(int=7)), "int": "12", "str": "word", "slug": "a-slug", "path": "a/b.txt"}


def _root() -> IndexedPatterns:
    (indexed,) = get_resolver().url_patterns
    assert isinstance(indexed, IndexedPatterns)
    return indexed


def _routes(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        if not isinstance(entry.pattern, RoutePattern):
            continue
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, route)
        else:
            yield route


def _paths() -> list[str]:
    """A concrete path for every route of the URLconf, and paths no route serves."""
    concrete = [
        re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES.get(m.group(1) or "str", "word"), route)
        for route in _routes(_root().url_patterns)
    ]
    unknown = ["", "nope", "tasksx", "tasks/x/y/z", "admin", "admin/", "admin/nope/", "api", "api/", "orgs/not-an-id"]
    return sorted(set(concrete + unknown + [f"{p}/" for p in concrete if not p.endswith("/")]))


def _as_django_resolves(patterns: list[URLPattern | URLResolver], path_: str) -> tuple[object, ...] | None:
    try:
        match = URLResolver(RoutePattern(""), patterns).resolve(path_)
    except Resolver404:
        return None
    return (match.func, match.args, match.kwargs, match.url_name, match.route, match.namespaces)


def test_every_path_resolves_as_djangos_scan_of_the_same_patterns():
    indexed = _root()
    checked = 0
    for path_ in _paths():
        expected = _as_django_resolves(indexed.url_patterns, path_)
        try:
            match = indexed.resolve(path_)
            found: tuple[object, ...] | None = (
                match.func,
                match.args,
                match.kwargs,
                match.url_name,
                match.route,
                match.namespaces,
            )
        except Resolver404:
            found = None
        assert found == expected, path_
        checked += 1
    assert checked > 150  # every route of every app


def test_a_path_of_the_last_app_is_not_tried_against_the_others():
    by_segment, anywhere = _root()._index
    tried_for_tasks = by_segment["tasks"]
    assert len(tried_for_tasks) < len(_root().url_patterns) / 3
    assert all(first_segments(entry) is ANY or "tasks" in first_segments(entry) for entry in tried_for_tasks)
    assert len(anywhere) == 1  # the catch-all 404 only


def view(request: object) -> None:
    return None


@pytest.mark.parametrize(
    ("entry", "segments"),
    [
        (path("tasks", view), frozenset({"tasks"})),
        (path("tasks/", view), frozenset({"tasks"})),
        (path("orgs/<uuid:org_id>/keys", view), frozenset({"orgs"})),
        (path("<slug:name>/x", view), ANY),
        (path("v<int:n>/x", view), ANY),  # a converter within the first segment
        (re_path(r"^tasks$", view), ANY),
        (path("", view), ANY),
        (URLResolver(RoutePattern(""), [path("a", view), path("b/<int:n>", view)]), frozenset({"a", "b"})),
        (URLResolver(RoutePattern(""), [path("a", view), re_path(r"^b", view)]), ANY),
        (URLResolver(RoutePattern("pre"), [path("fix", view)]), ANY),  # an include's prefix matches "prefix"
    ],
)
def test_first_segments_are_exact_or_any(entry, segments):
    assert first_segments(entry) == segments


def test_an_include_with_a_prefix_in_its_first_segment_is_tried_for_every_path():
    """``path("pre", include(...))`` matches "prefix": it is tried in its place, as Django tries it."""
    patterns = [path("a", view, name="a"), URLResolver(RoutePattern("pre"), [path("fix", view, name="fixed")])]
    indexed = IndexedPatterns(patterns)
    assert indexed.resolve("prefix").url_name == "fixed"
    assert indexed.resolve("a").url_name == "a"
    with pytest.raises(Resolver404):
        indexed.resolve("b")

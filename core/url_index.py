"""The URLconf's patterns tried by a path's first segment.

Django resolves a path by trying every pattern of the URLconf in order; each app's routes are
included under an empty prefix, so a path served by the last app (``/tasks``) first failed through
every route of the others (each failure an exception carrying the list of routes it tried): the
later a list's app, the more it cost to find. ``IndexedPatterns`` holds the same patterns in the
same order and tries, for a path, only those that can match its first segment (a pattern whose
first segment is not a plain word, a regular expression for one, is tried for every path, in its
place). What a path resolves to is what Django's scan finds; only the routes listed as tried in a
404's debug page are fewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from django.urls import URLPattern, URLResolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import ResolverMatch, RoutePattern

type Entry = URLPattern | URLResolver

ANY = None  # a pattern that may match whatever the path's first segment is


def first_segments(entry: Entry) -> frozenset[str] | None:
    """The first path segments ``entry`` can match, or ``ANY``."""
    pattern = entry.pattern
    if not isinstance(pattern, RoutePattern):
        return ANY  # a regular expression: may match anything
    route = str(pattern)
    literal = route.split("<", 1)[0]
    if "/" in literal:
        return frozenset({literal.split("/", 1)[0]})
    endpoint = isinstance(entry, URLPattern)
    if endpoint and literal == route and route:
        return frozenset({route})  # a whole path of one segment, matched exactly
    if isinstance(entry, URLResolver) and route == "":
        found: set[str] = set()
        for child in entry.url_patterns:
            segments = first_segments(child)
            if segments is ANY:
                return ANY
            found |= segments
        return frozenset(found)
    return ANY  # a converter or a prefix within the first segment


class IndexedPatterns(URLResolver):
    """``path("", include(patterns))`` that tries only the patterns that can match a path's first
    segment (in their order), then those that may match any."""

    def __init__(self, patterns: Sequence[Entry]) -> None:
        super().__init__(RoutePattern(""), list(patterns))

    @cached_property
    def _index(self) -> tuple[dict[str, tuple[Entry, ...]], tuple[Entry, ...]]:
        """Per first segment the patterns to try (the ``ANY`` ones among them, in order), and the
        patterns to try for a segment no pattern names."""
        segments_of = [(entry, first_segments(entry)) for entry in self.url_patterns]
        named = {segment for _, segments in segments_of if segments is not ANY for segment in segments}
        by_segment = {
            segment: tuple(entry for entry, segments in segments_of if segments is ANY or segment in segments)
            for segment in named
        }
        return by_segment, tuple(entry for entry, segments in segments_of if segments is ANY)

    def resolve(self, path: str) -> ResolverMatch:
        """Django's ``URLResolver.resolve`` over the patterns the path's first segment can match
        (this resolver's own prefix is empty: the path is its patterns' path as it is)."""
        path = str(path)
        by_segment, anywhere = self._index
        candidates = by_segment.get(path.split("/", 1)[0], anywhere)
        tried: list[list[Entry]] = []
        for pattern in candidates:
            try:
                sub_match = pattern.resolve(path)
            except Resolver404 as error:
                self._extend_tried(tried, pattern, error.args[0].get("tried"))  # type: ignore[attr-defined]  # Django's helper
                continue
            if sub_match:
                route = "" if isinstance(pattern, URLPattern) else str(pattern.pattern)
                self._extend_tried(tried, pattern, sub_match.tried)  # type: ignore[attr-defined]  # Django's helper
                return ResolverMatch(
                    sub_match.func,
                    sub_match.args,
                    {**self.default_kwargs, **sub_match.kwargs},
                    sub_match.url_name,
                    [self.app_name, *sub_match.app_names],
                    [self.namespace, *sub_match.namespaces],
                    self._join_route(route, sub_match.route),  # type: ignore[attr-defined]  # Django's helper
                    tried,
                    captured_kwargs=sub_match.captured_kwargs,  # type: ignore[attr-defined]  # Django's, not in its stubs
                    extra_kwargs={**self.default_kwargs, **sub_match.extra_kwargs},  # type: ignore[attr-defined]  # as above
                )
            tried.append([pattern])
        raise Resolver404({"tried": tried, "path": path})

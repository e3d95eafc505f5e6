"""The API's JSON renderer: camelCase keys, each field name camelized once per process.

``djangorestframework_camel_case`` runs a regular expression over every key of every object it
renders (a page of 100 rows of 13 fields is 1,300 substitutions per request). This renderer gives
exactly the same bytes — the same keys in the same order, the same values under the keys left as
they are (``JSON_CAMEL_CASE["JSON_UNDERSCOREIZE"]``) — but looks each key up in a bounded cache and
walks plain dicts and lists without the library's generic checks; anything else (lazy strings,
tuples, querysets, bytes) takes the library's own path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

from django.utils.encoding import force_str
from django.utils.functional import Promise
from djangorestframework_camel_case.render import CamelCaseJSONRenderer
from djangorestframework_camel_case.settings import api_settings
from djangorestframework_camel_case.util import camelize as library_camelize
from djangorestframework_camel_case.util import camelize_re, underscore_to_camel

from core.row_json import JsonRow
from core.row_render import CamelCasedRow

_OPTIONS: dict[str, object] = api_settings.JSON_UNDERSCOREIZE
_IGNORE_FIELDS: frozenset[str] = frozenset(api_settings.JSON_UNDERSCOREIZE.get("ignore_fields") or ())
_IGNORE_KEYS: frozenset[str] = frozenset(api_settings.JSON_UNDERSCOREIZE.get("ignore_keys") or ())
_LEAVES = frozenset({str, int, float, bool, type(None)})  # a leaf's type exactly (a subclass walks the full path)
KEY_CACHE_SIZE = 4096  # field names are few; user data keys (tool arguments) are never re-cased
SHAPE_KEYS = 64  # a dict of more keys than a serializer's is data, walked key by key


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _key_plan(key: str) -> tuple[str, bool, bool]:
    """(the key as rendered, whether its value is left as it is, whether the key itself is kept)."""
    new_key = camelize_re.sub(underscore_to_camel, key) if "_" in key else key
    keep_value = key in _IGNORE_FIELDS or new_key in _IGNORE_FIELDS
    keep_key = key in _IGNORE_KEYS or new_key in _IGNORE_KEYS
    return (key if keep_key else new_key), keep_value, keep_key


def camel_key(name: str) -> tuple[str, bool]:
    """A serializer field's rendered key and whether its value is left as it is (what the walk below
    does with that key): for rows rendered camelCase in one step (``core.row_render``)."""
    key, keep_value, _ = _key_plan(name)
    return key, keep_value


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _shape_plan(keys: tuple[object, ...]) -> tuple[tuple[str, ...], tuple[bool, ...]] | None:
    """The rendered keys of a dict with these keys, in order, and whether each value is left as it
    is; ``None`` when a key is not a plain ``str`` (a number, a lazy string) or two keys render
    alike (the later one wins: the general path keeps that order)."""
    if any(type(key) is not str for key in keys):
        return None
    plans = [_key_plan(str(key)) for key in keys]
    new_keys = tuple(plan[0] for plan in plans)
    if len(set(new_keys)) != len(new_keys):
        return None
    return new_keys, tuple(plan[1] for plan in plans)


def camelize(data: object) -> object:
    """``djangorestframework_camel_case.util.camelize(data, **JSON_UNDERSCOREIZE)``, same result (a
    ``CamelCasedRow`` is that result already)."""
    if type(data) in _LEAVES or type(data) is CamelCasedRow or type(data) is JsonRow:
        return data
    if type(data) is dict and len(data) <= SHAPE_KEYS:  # a row of a page: its keys' shape planned once
        shape = _shape_plan(tuple(data))
        if shape is not None:
            leaves = _LEAVES
            return {
                key: value if keep or type(value) in leaves else camelize(value)
                for key, keep, value in zip(shape[0], shape[1], data.values(), strict=True)
            }
    if isinstance(data, dict):
        rendered: dict[object, object] = {}
        for key, value in data.items():
            name = force_str(key) if isinstance(key, Promise) else key
            if isinstance(name, str):
                new_key, keep_value, _ = _key_plan(name)
                rendered[new_key] = value if keep_value or type(value) in _LEAVES else camelize(value)
            else:  # a number key: never in the ignore lists (they hold names)
                rendered[name] = camelize(value)
        return rendered
    if isinstance(data, (list, tuple)):  # a serializer's ReturnList too
        return [item if type(item) in _LEAVES else camelize(item) for item in data]
    return library_camelize(data, **_OPTIONS)


class CachedCamelCaseJSONRenderer(CamelCaseJSONRenderer):  # type: ignore[misc]  # the library ships no types
    """``CamelCaseJSONRenderer`` with the camelCase transform above (same bytes, less work)."""

    def render(
        self, data: object, accepted_media_type: str | None = None, renderer_context: Mapping[str, object] | None = None
    ) -> bytes:
        data = camelize(data)
        rows = _written_rows(data)
        if rows is not None:
            assert isinstance(data, dict)
            if self.get_indent(accepted_media_type, renderer_context or {}) is None:
                return self._page_with_rows(data, rows, accepted_media_type, renderer_context)
            shown = [json.loads(row) if type(row) is JsonRow else row for row in rows]
            data = {**data, "results": shown}  # pretty-printed: as values
        body: bytes = super(CamelCaseJSONRenderer, self).render(data, accepted_media_type, renderer_context)
        return body

    def _page_with_rows(
        self,
        page: dict[str, object],
        rows: list[object],
        accepted_media_type: str | None,
        renderer_context: Mapping[str, object] | None,
    ) -> bytes:
        """The page's envelope as DRF writes it, its ``results`` (the last key) the rows joined as
        they are, with the two line separators escaped as DRF escapes them in a whole body."""
        empty: bytes = super(CamelCaseJSONRenderer, self).render(
            {**page, "results": []}, accepted_media_type, renderer_context
        )
        texts = [
            row if type(row) is JsonRow else self._written(row, accepted_media_type, renderer_context) for row in rows
        ]
        joined = ",".join(texts).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        return empty[: -len(b"[]}")] + b"[" + joined.encode() + b"]}"

    def _written(
        self, row: object, accepted_media_type: str | None, renderer_context: Mapping[str, object] | None
    ) -> str:
        """A row Python wrote (one PostgreSQL would write otherwise), as DRF writes it."""
        text: bytes = super(CamelCaseJSONRenderer, self).render(row, accepted_media_type, renderer_context)
        return text.decode()


def _written_rows(data: object) -> list[object] | None:
    """A page's rows when some were written as JSON by PostgreSQL (``core.row_json``; the others
    rendered rows) and ``results`` is the envelope's last key, else None."""
    if type(data) is not dict or not data or next(reversed(data)) != "results":
        return None
    results = data["results"]
    if not isinstance(results, list) or not results or not any(type(row) is JsonRow for row in results):
        return None
    return results

"""A page's row rendered in one step: the camelCase dict the API writes, made by a function compiled
once per read plan.

``PlainReadModelSerializer`` reads a page's row (a tuple of columns) field by field through its
plan, and the renderer then walks every row again to camelize its keys: two loops in Python over
every field of every row. For a row, the plan is turned into the source of one function instead
(``out["createdAt"] = None if (v := row[5]) is None else c5(v)``, one line per field, in the
serializer's order) whose result already has the keys the renderer would give it and the values it
would leave. The result is a ``CamelCasedRow``, which ``core.renderers.camelize`` passes through: the
same bytes, one pass. The source depends only on the plan's shape (field names, kinds, column
indexes); each serializer instance binds its own fields and converters to it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from rest_framework import fields as drf_fields
from rest_framework.relations import PKOnlyObject

type Row = tuple[object, ...]
type Convert = Callable[[object], object]
type Field = drf_fields.Field[object, object, object, object]
type RowRenderer = Callable[[Row], CamelCasedRow]

PLAN_SHAPES = 256  # distinct read plans compiled (serializer classes with list pages: a few dozen)


class CamelCasedRow(dict[str, object]):
    """A rendered row: its keys are camelCase and its values are as the renderer writes them."""

    __slots__ = ()


class Step:
    """One field of a read plan: its rendered key, whether its value is left as it is (a key the
    camelCase settings ignore) and how it is read: a column by index with a converter that gives a
    leaf (``leaf``), a column with any other converter (camelized), or DRF's path (``field``)."""

    __slots__ = ("convert", "field", "index", "keep", "key", "leaf")

    def __init__(
        self, *, key: str, keep: bool, index: int | None, convert: Convert | None, field: Field, leaf: bool
    ) -> None:
        self.key, self.keep, self.index, self.convert, self.field, self.leaf = key, keep, index, convert, field, leaf


def row_renderer(steps: Sequence[Step], *, camelize: Convert) -> RowRenderer:
    """The function that renders a row through ``steps`` (the same result as reading each field and
    camelizing the dict; a field whose DRF path raises ``SkipField`` is left out)."""
    source, shape = _source(steps)
    bound: list[object] = []
    for step in steps:
        bound.append(step.field if step.convert is None else step.convert)
    return _factory(source, shape)(*bound, CamelCasedRow, camelize, _field_value)


def _source(steps: Sequence[Step]) -> tuple[str, tuple[str, ...]]:
    """The factory's source: its parameters are each step's converter or field, then the row class,
    ``camelize`` and the DRF path; the keys are literals."""
    lines = []
    for n, step in enumerate(steps):
        key = repr(step.key)
        if step.convert is None:
            lines.append(f"        field_value(out, {key}, f{n}, row, keep={step.keep}, camelize=camelize)")
            continue
        value = f"c{n}(v)" if step.leaf or step.keep else f"camelize(c{n}(v))"
        lines.append(f"        out[{key}] = None if (v := row[{step.index}]) is None else {value}")
    parameters = ", ".join(f"f{n}" if step.convert is None else f"c{n}" for n, step in enumerate(steps))
    source = "\n".join(
        [
            f"def make({parameters}{', ' if parameters else ''}Row, camelize, field_value):",
            "    def render(row):",
            "        out = Row()",
            *lines,
            "        return out",
            "    return render",
        ]
    )
    return source, tuple(step.key for step in steps)


@functools.lru_cache(maxsize=PLAN_SHAPES)
def _factory(source: str, shape: tuple[str, ...]) -> Callable[..., RowRenderer]:
    """The compiled factory of ``source`` (made by ``_source`` from a plan: names, literal keys and
    indexes only, nothing read from a request)."""
    namespace: dict[str, object] = {}
    exec(compile(source, f"<row renderer {shape}>", "exec"), namespace)  # noqa: S102  # our own generated source
    factory: Callable[..., RowRenderer] = namespace["make"]  # type: ignore[assignment]  # defined by the source
    return factory


def _field_value(out: CamelCasedRow, key: str, field: Field, row: Row, *, keep: bool, camelize: Convert) -> None:
    """``field`` of ``row`` through DRF's path into ``out`` (as ``Serializer.to_representation``
    writes it: a skipped field is left out, None stays None), camelized unless ``keep``."""
    try:
        value = field.get_attribute(row)
    except drf_fields.SkipField:
        return
    checked = value.pk if isinstance(value, PKOnlyObject) else value
    if checked is None:
        out[key] = None
        return
    rendered = field.to_representation(value)
    out[key] = rendered if keep else camelize(rendered)

"""A page's rows written as JSON by PostgreSQL, for serializers whose every field is a column shown
as it is stored.

A row read as a tuple still costs Python a value object per column (a UUID, a datetime), a
converter call per value (``str``, ``isoformat``), a dict and its JSON encoding. For a serializer
whose every readable field is a column of a kind PostgreSQL writes exactly as DRF does — a UUID, a
string (a choice included, or an empty one shown as null), a whole number, a boolean, a time in
UTC, a date, a credit amount, a JSON list of strings — or a count, flag or text the view annotates,
the page's statement selects one text per row instead: the row's JSON object, keys camelCase and
in the serializer's order, written by the database (``RowJson``). The renderer then joins the
rows as they are (``core.renderers``). The bytes are DRF's (``tests/core/test_list_rendering.py``
compares every list's pages both ways, and ``tests/core/test_row_json.py`` values PostgreSQL and
Python could write differently).

What decides, per field: its serializer field's class (DRF's own representation, nothing
overridden, or one of ``core.fields``' that says what it writes), and the column's database type
(an annotation's output field). Anything else (a method, a relation, a JSON object or a float)
leaves the serializer on the tuple path. A writer that writes only some values as DRF does has a
guard (``GUARDS``): a row whose guard fails has no text and is written by Python.
"""

from __future__ import annotations

import datetime
import json
import zoneinfo
from collections.abc import Callable, Sequence

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Expression, F
from django.db.models.expressions import BaseExpression, Combinable
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.query import Query
from rest_framework import ISO_8601
from rest_framework import fields as drf_fields
from rest_framework.settings import api_settings

from core.fields import CreditField, EmptyAsNullCharField, EmptyAsNullChoiceField

type Field = drf_fields.Field[object, object, object, object]
type Sql = tuple[str, tuple[str | int, ...]]

_NULL = "'null'"
_COLUMN = "\x00column\x00"  # where a writer's SQL names its column (no SQL holds this character)


class JsonRow(str):
    """A row's JSON text as the renderer writes it (written by PostgreSQL: ``RowJson``)."""

    __slots__ = ()


def _quoted(text: str) -> str:
    """``text`` as an SQL string literal (the keys are our own field names; no ``%`` reaches the driver)."""
    if "%" in text:
        raise ValueError(f"a row's JSON text cannot hold {text!r}")
    return "'" + text.replace("'", "''") + "'"


def _text_column(column: str) -> str:
    return f"COALESCE(to_json({column})::text, {_NULL})"  # PostgreSQL escapes a string as Python's json does


def _text_or_null(column: str) -> str:
    return _text_column(f"NULLIF({column}, '')")


def _quoted_text(column: str) -> str:
    return f"CASE WHEN {column} IS NULL THEN {_NULL} ELSE '\"' || {column}::text || '\"' END"


def _whole_number(column: str) -> str:
    return f"COALESCE({column}::text, {_NULL})"


def _boolean(column: str) -> str:
    return f"CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' ELSE {_NULL} END"


def _utc_time(column: str) -> str:
    """``DateTimeField``'s ISO 8601 in UTC: ``2026-12-07T21:12:36.120000Z``, the fraction left out
    when it is zero (``datetime.isoformat``)."""
    micro = f"to_char({column}, 'US')"
    return (
        f"CASE WHEN {column} IS NULL THEN {_NULL} ELSE '\"' || "
        f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN {micro} = '000000' THEN '' ELSE '.' || {micro} END || 'Z\"' END"
    )


def _date(column: str) -> str:
    """``DateField``'s ISO 8601: ``2026-12-07`` (``date.isoformat``)."""
    return f"CASE WHEN {column} IS NULL THEN {_NULL} ELSE '\"' || to_char({column}, 'YYYY-MM-DD') || '\"' END"


def _iso_date(field: Field) -> bool:
    output = getattr(field, "format", api_settings.DATE_FORMAT)
    return isinstance(output, str) and output.lower() == ISO_8601


def _string_list(column: str) -> str:
    """A JSON array of strings (and nulls) as DRF's ``ListField`` of a string field writes it;
    written only where ``_string_list_guard`` holds."""
    element = f"CASE WHEN jsonb_typeof(_rj.e) = 'null' THEN {_NULL} ELSE to_json(_rj.e #>> '{{}}')::text END"
    return (
        f"CASE WHEN {column} IS NULL OR jsonb_typeof({column}) = 'null' THEN {_NULL} ELSE "  # noqa: S608  # our column's SQL
        f"(SELECT '[' || COALESCE(string_agg({element}, ',' ORDER BY _rj.i), '') || ']' "
        f"FROM jsonb_array_elements({column}) WITH ORDINALITY AS _rj(e, i)) END"
    )


def _string_list_guard(column: str) -> str:
    """Whether the value is null or an array of strings and nulls: DRF writes another element (a
    number, an object) as its Python ``str``, and such a row is left to Python."""
    return (
        f"CASE WHEN {column} IS NULL OR jsonb_typeof({column}) = 'null' THEN true "  # noqa: S608  # our column's SQL
        f"WHEN jsonb_typeof({column}) <> 'array' THEN false ELSE NOT EXISTS "
        f"(SELECT 1 FROM jsonb_array_elements({column}) AS _rg(e) "
        f"WHERE jsonb_typeof(_rg.e) NOT IN ('string', 'null')) END"
    )


# A writer that writes only some values as DRF does, and the condition under which it does: a row
# whose condition fails is written by Python (``RowJson.guarded``: its text is null).
GUARDS: dict[Callable[[str], str], Callable[[str], str]] = {_string_list: _string_list_guard}


def _string_items(field: Field) -> bool:
    """A ``ListField`` whose items are strings as they are (a string field, or a UUID written as text)."""
    child = getattr(field, "child", None)
    if type(field) is not drf_fields.ListField or child is None:
        return False
    uuid_text = type(child) is drf_fields.UUIDField and getattr(child, "uuid_format", "") == "hex_verbose"
    return uuid_text or _is_drf_string(child)


_TEXT_TYPES = ("varchar", "text")
_WHOLE_TYPES = ("integer", "bigint", "smallint")


def _is_drf_string(field: Field) -> bool:
    """A field whose representation of a string is that string: DRF's ``CharField`` (and its
    subclasses that keep its representation: slugs, emails, URLs) or a ``ChoiceField`` whose
    choices are strings."""
    represent = type(field).to_representation
    if represent is drf_fields.CharField.to_representation:
        return True
    if represent is drf_fields.ChoiceField.to_representation:
        return _string_choices(field)
    return False


def _string_choices(field: Field) -> bool:
    """A ``ChoiceField`` whose choices are strings: it represents a string as that string."""
    return isinstance(field, drf_fields.ChoiceField) and all(type(key) is str for key in field.choices)


UTC_ZONES = frozenset({datetime.UTC, zoneinfo.ZoneInfo("UTC")})


def iso_zone(field: drf_fields.DateTimeField) -> datetime.tzinfo | None:
    """The zone a ``DateTimeField`` writes its times in when it writes ISO 8601, else None (the
    zone DRF's ``enforce_timezone`` converts to: the field's own, or the current one)."""
    zone: datetime.tzinfo | None = field.timezone if hasattr(field, "timezone") else field.default_timezone()
    output = getattr(field, "format", api_settings.DATETIME_FORMAT)
    return zone if isinstance(output, str) and output.lower() == ISO_8601 else None


def _utc_iso(field: Field) -> bool:
    """Whether a ``DateTimeField`` writes ISO 8601 in UTC (then ``Z`` ends each time)."""
    return isinstance(field, drf_fields.DateTimeField) and iso_zone(field) in UTC_ZONES


def column_json(
    field: Field, model_field: models.Field[object, object], db: BaseDatabaseWrapper
) -> Callable[[str], str] | None:
    """How PostgreSQL writes ``model_field``'s value as ``field`` represents it (the SQL of the
    column given), or None when it may write it otherwise."""
    db_type = str(model_field.db_type(db) or "").split("(")[0].strip()
    kind = type(field)
    if kind is drf_fields.UUIDField and getattr(field, "uuid_format", "") == "hex_verbose" and db_type == "uuid":
        return _quoted_text
    if _is_drf_string(field) and db_type in _TEXT_TYPES:
        return _text_column
    empty_as_null = kind is EmptyAsNullCharField or (kind is EmptyAsNullChoiceField and _string_choices(field))
    if empty_as_null and db_type in _TEXT_TYPES:
        return _text_or_null
    if kind.to_representation is drf_fields.IntegerField.to_representation and db_type in _WHOLE_TYPES:
        return _whole_number
    big = kind is drf_fields.BigIntegerField and not getattr(
        field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING
    )
    if big and db_type in _WHOLE_TYPES:
        return _whole_number  # a number, not a string: written as IntegerField writes it
    if kind.to_representation is drf_fields.BooleanField.to_representation and db_type == "boolean":
        return _boolean
    if kind is drf_fields.DateTimeField and db_type == "timestamp with time zone" and _utc_iso(field):
        return _utc_time
    if kind is drf_fields.DateField and db_type == "date" and _iso_date(field):
        return _date
    if _string_items(field) and db_type == "jsonb":
        return _string_list
    if (
        kind is CreditField
        and isinstance(model_field, models.DecimalField)
        and model_field.decimal_places == 6
        and db_type == "numeric"
    ):
        return _quoted_text  # numeric(…, 6) is written with its six digits, as ``credit_str`` writes it
    return None


class RowJson(Expression):
    """The row's JSON object as text: ``'{"id":' || <id> || ',"name":' || <name> || … || '}'``,
    one piece of SQL per column or annotation (``column_json``), the keys literal."""

    def __init__(
        self,
        keys: tuple[str, ...],
        names: tuple[str, ...],
        writers: tuple[Callable[[str], str], ...],
        annotations: tuple[tuple[str, frozenset[str]], ...] = (),
    ) -> None:
        super().__init__(output_field=models.TextField())
        self.keys, self.writers, self.annotations = keys, writers, annotations
        self.sources: list[Combinable | Expression] = [F(name) for name in names]

    def get_source_expressions(self) -> list[Combinable | Expression]:
        return self.sources

    def set_source_expressions(self, exprs: Sequence[Combinable | Expression]) -> None:
        self.sources = list(exprs)

    def reads(self, query: Query) -> bool:
        """Whether ``query`` has the annotations this row writes, each of the kind its writer
        writes (a count, a flag the view adds): else the page is read as tuples."""
        found = query.annotations
        return all(
            name in found and found[name].output_field.get_internal_type() in kinds for name, kinds in self.annotations
        )

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        pieces: list[str] = []
        params: list[str | int] = []
        for n, (key, write, source) in enumerate(zip(self.keys, self.writers, self.sources, strict=True)):
            assert isinstance(source, BaseExpression)  # resolved: a column, or the annotation's expression
            column, column_params = compiler.compile(source)
            written = write(_COLUMN)
            params.extend(list(column_params) * written.count(_COLUMN))  # a writer may name its column twice
            pieces.append(_quoted(("{" if n == 0 else ",") + json.dumps(key, ensure_ascii=False) + ":"))
            pieces.append(written.replace(_COLUMN, f"({column})"))
        pieces.append(_quoted("}") if pieces else _quoted("{}"))
        guards, guard_params = self._guards(compiler)
        if guards:  # a row some value of which PostgreSQL would write otherwise: null, written by Python
            return f"CASE WHEN {' AND '.join(guards)} THEN {' || '.join(pieces)} END", (*guard_params, *params)
        return "(" + " || ".join(pieces) + ")", tuple(params)

    @property
    def guarded(self) -> bool:
        """Whether some rows may be left to Python (their text null: ``GUARDS``)."""
        return any(write in GUARDS for write in self.writers)

    def _guards(self, compiler: SQLCompiler) -> tuple[list[str], list[str | int]]:
        guards: list[str] = []
        params: list[str | int] = []
        for write, source in zip(self.writers, self.sources, strict=True):
            guard = GUARDS.get(write)
            if guard is None:
                continue
            assert isinstance(source, BaseExpression)
            column, column_params = compiler.compile(source)
            written = guard(_COLUMN)
            params.extend(list(column_params) * written.count(_COLUMN))
            guards.append("(" + written.replace(_COLUMN, f"({column})") + ")")
        return guards, params


_WHOLE_NUMBER_FIELDS = frozenset(
    {"IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField"}
)
# An annotation's writer, by the kind of value it must hold (its output field's internal type).
ANNOTATION_WRITERS: dict[str, tuple[Callable[[str], str], frozenset[str]]] = {
    "whole": (_whole_number, _WHOLE_NUMBER_FIELDS),
    "boolean": (_boolean, frozenset({"BooleanField"})),
    "text": (_text_column, frozenset({"CharField", "TextField"})),
}


def annotated(field: Field) -> tuple[str, str] | None:
    """The annotation a field reads and the kind of its value (``ANNOTATION_WRITERS``), for a DRF
    ``IntegerField``, ``BooleanField`` or string field whose source is one name (a count, a flag or
    a related row's text the view adds), else None."""
    if len(field.source_attrs) != 1:
        return None
    represent = type(field).to_representation
    if represent is drf_fields.IntegerField.to_representation:
        return field.source_attrs[0], "whole"
    if represent is drf_fields.BooleanField.to_representation:
        return field.source_attrs[0], "boolean"
    if _is_drf_string(field):
        return field.source_attrs[0], "text"
    return None


def row_json(
    model: type[models.Model], steps: Sequence[tuple[str, str, Field, str | None]], *, using: str = "default"
) -> RowJson | None:
    """The expression of a row's JSON for ``steps`` (each: rendered key, the column's attribute name
    or the annotation's name, the serializer field, and for an annotation the kind of its value:
    ``ANNOTATION_WRITERS``), or None when a step is not written by PostgreSQL exactly (or the
    database is not PostgreSQL)."""
    db = connections[using]
    if db.vendor != "postgresql":
        return None
    by_attribute = {field.attname: field for field in model._meta.concrete_fields}
    writers = []
    for _, name, field, annotated in steps:
        write = ANNOTATION_WRITERS[annotated][0] if annotated else column_json(field, by_attribute[name], db)
        if write is None:
            return None
        writers.append(write)
    return RowJson(
        tuple(key for key, _, _, _ in steps),
        tuple(name for _, name, _, _ in steps),
        tuple(writers),
        tuple((name, ANNOTATION_WRITERS[kind][1]) for _, name, _, kind in steps if kind),
    )

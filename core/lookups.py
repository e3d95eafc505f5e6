"""``AnyOf``: a column equal to one of many values, the values sent as one array parameter.

A page-wide read (the spend of a page's members or keys, a page's specialists' tools, the caller's
roles in a page of orgs) names up to 100 ids. ``__in`` compiles and sends them as 100 placeholders:
each id prepared by the field, a statement text psycopg cannot keep (it is new for every page), and
100 values quoted into it. ``AnyOf(F("specialist_id"), ids)`` is ``specialist_id = ANY(%s)`` with
the ids as one array on PostgreSQL (the same plan: PostgreSQL reads an ``IN`` list as that array),
and ``IN (…)`` elsewhere (SQLite).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Lookup, QuerySet
from django.db.models.sql.compiler import SQLCompiler

type _Sql = tuple[str, list[Any]]  # a fragment and its parameters (their types are the column's)


class AnyOf(Lookup[bool]):
    """``AnyOf(F("column"), values)`` in ``filter()``: rows whose column is one of ``values`` (none
    when there are none). Values, not a query: a queryset is refused (``__in`` reads it as a
    subquery; this would run it first). A ``None`` among them is left out, as ``__in`` leaves it.
    For ``filter()`` only: ``exclude()`` would also drop the rows whose column is NULL, which
    ``exclude(column__in=…)`` keeps."""

    lookup_name = "any_of"
    prepare_rhs = False

    def __init__(self, lhs: Any, rhs: Iterable[object]) -> None:
        if isinstance(rhs, QuerySet):
            raise TypeError("AnyOf takes values, not a queryset: filter by `column__in=queryset` instead.")
        super().__init__(lhs, [value for value in rhs if value is not None])

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> _Sql:  # type: ignore[override]  # Django's own signature, typed
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection, prepared=False) for value in self.rhs]
        if not values:
            raise EmptyResultSet
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]

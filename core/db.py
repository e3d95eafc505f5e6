"""Database phases of async code: one hop to a thread, and the connection given back after it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache, wraps

import psycopg
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Model
from django.db.models.expressions import Col
from psycopg._queries import PostgresQuery  # the type of a statement psycopg sends (its own module)
from psycopg.rows import TupleRow

from core.postgresql.base import timestamp_zone


def release_connections() -> None:
    """Gives this thread's connections back (to the pool, when there is one) unless a transaction
    of the caller is still open: async code must not hold one of the pool's few connections while
    it waits on the network."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


def commit_without_waiting_for_disk() -> None:
    """This transaction's commit returns before PostgreSQL has flushed it to disk (its
    ``synchronous_commit`` is ``off``, for this transaction only). A later synchronous commit of any
    transaction flushes it too; a crash of the database before then loses it whole (it stays atomic).
    Nothing on SQLite, or outside a transaction."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def wait_for_disk() -> None:
    """Returns once every commit this connection has made is on disk: a synchronous commit of one
    WAL record of its own (a transactional logical message; no table is touched) flushes the WAL up
    to itself, and the WAL is flushed in order. So a transaction may commit without waiting for the
    disk while it holds a hot row's lock, and wait after the lock is released (concurrent waits
    share one flush). Outside a transaction only (inside one, its own commit decides); nothing on
    SQLite."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with cursor() as cursor_:
            cursor_.execute("SELECT pg_logical_emit_message(true, 'leancore.durable', '')")


def in_thread[**P, R](fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``fn`` as one thread hop for async code, its connection released after it."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            release_connections()

    return sync_to_async(run)


# --- Hand-written reads of a hot path ------------------------------------------------------
# The ORM spends most of a simple join's time building and compiling the query (2-3 ms of CPU for
# a locked read with two joins, against 0.4 ms for the statement itself). The turn's hottest reads
# are written by hand instead, and their rows read back as model instances with the ORM's own
# per-backend conversions, so they work the same on PostgreSQL and SQLite.


# The parameters of a hand-written statement, and the values one with named parameters (``fetch``)
# reads back as PostgreSQL's types give them (numeric: Decimal, uuid: UUID, timestamptz: an aware datetime).
type SqlValue = Decimal | int | str | bool | uuid.UUID | datetime | None


@cache
def columns(model: type[Model], alias: str) -> str:
    """The SELECT list of ``model``'s concrete fields under ``alias``, in the ORM's order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)  # type: ignore[arg-type]  # a concrete field has a column


def lock(alias: str) -> str:
    """``FOR UPDATE OF alias`` where the database has row locks (SQLite locks the whole database)."""
    if connection.features.has_select_for_update_of:
        return f" FOR UPDATE OF {alias}"
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def adapt(value: SqlValue) -> SqlValue:
    """A parameter as the ORM would send it to this database."""
    if isinstance(value, uuid.UUID) and not connection.features.has_native_uuid_field:
        return value.hex
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, Decimal):
        return connection.ops.adapt_decimalfield_value(value)
    return value


@cache
def _converters(vendor: str, model: type[Model]) -> tuple[tuple[int, Col, tuple[Callable[..., object], ...]], ...]:
    """(index, column, converters) of each of ``model``'s fields that this backend converts."""
    del vendor  # part of the cache key: converters differ per backend
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        col = field.get_col(model._meta.db_table)
        converters = (*connection.ops.get_db_converters(col), *col.get_db_converters(connection))
        if converters:
            found.append((index, col, converters))
    return tuple(found)


class Row:
    """One row of a hand-written SELECT, read model by model in the order of its columns."""

    __slots__ = ("_at", "_values")

    def __init__(self, values: Sequence[object]) -> None:
        self._values = values
        self._at = 0

    def take[M: Model](self, model: type[M]) -> M:
        """The next ``columns(model)``, as an instance."""
        found = self.take_optional(model)
        if found is None:
            raise LookupError(f"The row has no {model.__name__}.")
        return found

    def take_optional[M: Model](self, model: type[M]) -> M | None:
        """The next ``columns(model)``, as an instance (None for a LEFT JOIN that found nothing)."""
        count = len(model._meta.concrete_fields)
        values = list(self._values[self._at : self._at + count])
        self._at += count
        if values[0] is None:  # the primary key
            return None
        for index, col, converters in _converters(connection.vendor, model):
            value = values[index]
            if value is not None:
                for converter in converters:
                    value = converter(value, col, connection)
                values[index] = value
        return model.from_db(connection.alias, None, values)  # type: ignore[arg-type]  # the stubs want field names

    def rest(self) -> Sequence[object]:
        """The columns after the models taken (raw values: counts, flags)."""
        return self._values[self._at :]


class _Cursor(psycopg.Cursor[TupleRow]):
    """psycopg's server-binding cursor whose prepared statements keep their text as the last query,
    as unprepared ones do: Django's SQL log and ``CaptureQueriesContext`` read it from there."""

    def _send_query_prepared(self, name: bytes, pgq: PostgresQuery, *, binary: bool | None = None) -> None:
        self._query = pgq
        super()._send_query_prepared(name, pgq, binary=binary)


def cursor() -> CursorWrapper:
    """A cursor for the hand-written statements. On PostgreSQL it binds parameters on the server
    (psycopg's own cursor, not Django's client-side one): the statement text is the same on every
    call, so psycopg skips quoting the values and prepares it on the server at its first run on a
    connection (parsed and planned once: the settlement's statement plans in about a millisecond)."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if timestamp_zone(raw) != connection.timezone:
        return connection.cursor()  # a connection in another time zone: Django's cursor registers it
    connection.validate_thread_sharing()
    if raw.prepare_threshold is None:  # Django turns psycopg's preparing off (its cursors bind on the client)
        raw.prepare_threshold = 0
    with connection.wrap_database_errors:
        made = _Cursor(raw)
    return connection.make_debug_cursor(made) if connection.queries_logged else connection.make_cursor(made)  # type: ignore[arg-type]  # psycopg's own cursor


# --- Scopes: every hand-written statement names its organization, or says why it spans them ----


class UnscopedSQLError(RuntimeError):
    """A hand-written statement said to be one organization's that does not bind that org's id to an
    ``organization_id`` condition."""


@dataclass(frozen=True, slots=True)
class InOrg:
    """A statement of one organization's rows: its SQL filters on ``organization_id`` and its
    parameters bind ``org_id`` (checked before it runs)."""

    org_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class AcrossOrgs:
    """A statement that spans organizations on purpose (a row found by its own id, a user's
    memberships): ``reason`` says why (``tests/core/test_reads_need_an_org.py`` lists them)."""

    reason: str


type Scope = InOrg | AcrossOrgs


def _check(scope: Scope | None, sql: str, values: Sequence[SqlValue]) -> None:
    """Every call of the app code gives its scope (``tests/core/test_hand_written_sql.py`` walks them)."""
    if isinstance(scope, InOrg) and ("organization_id" not in sql or scope.org_id not in values):
        raise UnscopedSQLError(f"Not scoped to organization {scope.org_id}: {sql[:120]}")


def any_of(column: str, values: Sequence[SqlValue]) -> tuple[str, list[SqlValue]]:
    """``column`` among ``values``, and its parameters: one array on PostgreSQL (``= ANY(%s)``: the
    same statement text whatever the number of values, prepared once), ``IN`` elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]  # type: ignore[list-item]  # psycopg sends a list as an array
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def rows(sql: str, params: Sequence[SqlValue] = (), *, scope: Scope | None = None) -> list[Row]:
    _check(scope, sql, params)
    with cursor() as cursor_:
        cursor_.execute(sql, [adapt(value) for value in params])
        found: list[tuple[object, ...]] = cursor_.fetchall()
        return [Row(values) for values in found]


def execute(sql: str, params: Sequence[SqlValue] = (), *, scope: Scope | None = None) -> int:
    """A hand-written write; the number of rows it touched."""
    _check(scope, sql, params)
    with cursor() as cursor_:
        cursor_.execute(sql, [adapt(value) for value in params])
        touched: int = cursor_.rowcount
        return touched


def fetch(sql: str, params: Mapping[str, SqlValue], *, scope: Scope | None = None) -> list[tuple[SqlValue, ...]]:
    """A hand-written PostgreSQL statement with named parameters (``%(name)s``, bound on the
    server): its rows (none for a statement that returns nothing)."""
    _check(scope, sql, list(params.values()))
    with cursor() as cursor_:
        cursor_.execute(sql, params)
        if cursor_.description is None:
            return []
        return [tuple(row) for row in cursor_.fetchall()]


@dataclass(frozen=True, slots=True)
class Statement:
    """One hand-written statement of ``fetch_together``."""

    sql: str
    params: Mapping[str, SqlValue]
    scope: Scope


def fetch_together(*statements: Statement) -> list[list[tuple[SqlValue, ...]]]:
    """PostgreSQL, outside any transaction: the statements sent at once (psycopg's pipeline mode) and
    run in order as one implicit transaction, committed when the last has run and rolled back whole
    if one fails: one round trip, and nothing of the client's time between them. Each statement has
    a snapshot of its own, taken when it starts. Their rows, statement by statement."""
    if connection.in_atomic_block:
        raise RuntimeError("fetch_together runs its statements as a transaction of their own.")
    for statement in statements:
        _check(statement.scope, statement.sql, list(statement.params.values()))
    cursors = [cursor() for _ in statements]  # before the pipeline: opening one may check the connection
    try:
        with connection.wrap_database_errors, connection.connection.pipeline():
            for cursor_, statement in zip(cursors, statements, strict=True):
                cursor_.execute(statement.sql, statement.params)
        return [[tuple(row) for row in cursor_.fetchall()] if cursor_.description else [] for cursor_ in cursors]
    finally:
        for cursor_ in cursors:
            cursor_.close()


def as_decimal(value: SqlValue) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(f"Not a decimal: {value!r}")
    return value


def as_optional_decimal(value: SqlValue) -> Decimal | None:
    return None if value is None else as_decimal(value)


def as_str(value: SqlValue) -> str:
    if not isinstance(value, str):
        raise TypeError(f"Not a string: {value!r}")
    return value


def as_uuid(value: SqlValue) -> uuid.UUID:
    if not isinstance(value, uuid.UUID):
        raise TypeError(f"Not a UUID: {value!r}")
    return value


def read_uuid(value: object) -> uuid.UUID:
    """A UUID column's value as a hand-written read gives it on either database: a UUID (PostgreSQL)
    or its text (SQLite keeps the 32 hex digits)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# --- Hand-written writes of a hot path -----------------------------------------------------
# Model.save() and create() rebuild and compile their statement each time; these write the same
# columns with the fields' own preparation (defaults, auto_now, JSON, per-backend values).


@cache
def _insert_sql(model: type[Model], count: int) -> str:
    quote = connection.ops.quote_name
    names = ", ".join(quote(field.column) for field in model._meta.concrete_fields)  # type: ignore[arg-type]  # a concrete field has a column
    row = "(" + ", ".join(["%s"] * len(model._meta.concrete_fields)) + ")"
    return f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES " + ", ".join([row] * count)  # noqa: S608


def insert[M: Model](*instances: M) -> list[M]:
    """One INSERT of new instances of one model, every concrete field as ``save()`` would write it."""
    model = type(instances[0])
    fields = model._meta.concrete_fields
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for instance in instances for field in fields
    ]
    with cursor() as cursor_:
        cursor_.execute(_insert_sql(model, len(instances)), values)
    for instance in instances:
        instance._state.adding = False
        instance._state.db = connection.alias
    return list(instances)


@cache
def _update_sql(model: type[Model], names: tuple[str, ...], where: str) -> str:
    quote = connection.ops.quote_name
    meta = model._meta
    assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in names)  # type: ignore[arg-type, union-attr]  # a concrete field's column
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {where}"  # noqa: S608


def update_rows(
    model: type[Model],
    values: Mapping[str, object],
    where: str,
    params: Sequence[SqlValue] = (),
    *,
    scope: Scope | None = None,
) -> int:
    """``QuerySet.update(**values)`` of the rows ``where`` picks; the number of rows it touched."""
    _check(scope, where, params)
    meta = model._meta
    prepared = [meta.get_field(name).get_db_prep_save(value, connection) for name, value in values.items()]  # type: ignore[union-attr]  # a concrete field
    with cursor() as cursor_:
        cursor_.execute(_update_sql(model, tuple(values), where), [*prepared, *(adapt(value) for value in params)])
        touched: int = cursor_.rowcount
        return touched


def update(instance: Model, *names: str) -> None:
    """``save(update_fields=names)`` of an instance read in this transaction (auto_now included), by
    its id and, for an org-owned row, its organization's."""
    meta = instance._meta
    values = {name: meta.get_field(name).pre_save(instance, False) for name in names}  # type: ignore[union-attr]  # a concrete field
    where = f"{connection.ops.quote_name(meta.pk.column)} = %s"  # type: ignore[arg-type]  # a model's pk always has its column
    org_id = getattr(instance, "organization_id", None)
    if org_id is None:
        update_rows(type(instance), values, where, [instance.pk], scope=AcrossOrgs("a row by its own id"))
        return
    where += " AND organization_id = %s"
    update_rows(type(instance), values, where, [instance.pk, org_id], scope=InOrg(org_id))

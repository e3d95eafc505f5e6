"""Django's PostgreSQL backend (the settings select it for every PostgreSQL database) with two changes:

- timestamps are read by psycopg's own loader (C code) instead of Django's wrapper around it (a
  Python call and a ``replace(tzinfo=…)`` per value: a page of 100 rows of three timestamps is 300
  of them). Django's wrapper exists to give every value the zone Django asked for; it is kept
  wherever that zone is not UTC. In UTC the two give the same values, ``datetime.UTC`` included:
  Django keeps its connections' ``TimeZone`` at UTC, and psycopg reads a timestamp of a UTC
  connection as ``datetime.UTC``;
- with a pool (``DB_POOL_SIZE`` > 0), the time each connection took to come out of the pool is
  recorded (``core.metrics.record_db_pool_wait``): waits that grow say the pool is too small for the
  load, long before requests start failing after DB_POOL_TIMEOUT.
"""

from __future__ import annotations

import datetime
import functools
import time
from collections.abc import Callable

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import get_adapters_template, register_tzloader
from django.utils.asyncio import async_unsafe
from psycopg import Connection, adapt
from psycopg.pq import Format
from psycopg.types.datetime import TimestamptzLoader

from core import metrics


@functools.cache
def _utc_adapters(use_tz: bool) -> adapt.AdaptersMap:
    """Django's adapters for a connection in UTC, its timestamp loader replaced by psycopg's own
    (the map picks psycopg's C version of it when the C extension is installed)."""
    adapters = adapt.AdaptersMap(get_adapters_template(use_tz, datetime.UTC))
    adapters.register_loader("timestamptz", TimestamptzLoader)
    return adapters


_PSYCOPGS_UTC = datetime.UTC  # the zone of psycopg's own loader on a connection Django keeps in UTC


def timestamp_zone(raw: Connection[object]) -> datetime.tzinfo | None:
    """The zone a psycopg connection reads timestamps in: Django's loader's, or UTC for psycopg's own
    (installed only on connections Django keeps in UTC, below)."""
    loader = raw.adapters.get_loader(raw.adapters.types["timestamptz"].oid, Format.TEXT)
    zone: datetime.tzinfo | None = getattr(loader, "timezone", _PSYCOPGS_UTC)
    return zone


class DatabaseWrapper(base.DatabaseWrapper):
    def _reads_utc_natively(self) -> bool:
        return self.timezone is datetime.UTC

    def get_connection_params(self) -> dict[str, object]:
        params: dict[str, object] = super().get_connection_params()
        if self._reads_utc_natively():
            params["context"] = _utc_adapters(True)
        return params

    def get_new_connection(self, conn_params: dict[str, object]) -> object:
        """psycopg's connection (Django's own code is all that reads it)."""
        if self.pool is None:
            return super().get_new_connection(conn_params)
        started = time.perf_counter()
        try:
            return super().get_new_connection(conn_params)  # the pool's getconn, a timeout included
        finally:
            metrics.record_db_pool_wait(time.perf_counter() - started)

    @async_unsafe
    def create_cursor(self, name: str | None = None) -> object:
        """Django's cursor; on a connection that reads timestamps in UTC (psycopg's loader), made as Django
        makes it but without Django's check of its loader's zone (an attribute psycopg's loader has
        not), the zone given to the cursor if Django's has changed since the connection opened (a
        test's ``override_settings``)."""
        if timestamp_zone(self.connection) is not _PSYCOPGS_UTC:
            return super().create_cursor(name)
        withhold = self.connection.autocommit  # a named cursor outlives autocommit's transaction
        cursor: object
        if not name:
            cursor = self.connection.cursor()
        elif self.settings_dict["OPTIONS"].get("server_side_binding") is True:
            cursor = self.connection.cursor(name, scrollable=False, withhold=withhold)
        else:  # Django's server-side cursor with client-side binding, made as Django's own method makes it
            server_side: Callable[..., object] = base.ServerSideCursor
            cursor = server_side(self.connection, name=name, scrollable=False, withhold=withhold)
        if self.timezone is not datetime.UTC:
            register_tzloader(self.timezone, cursor)
        return cursor

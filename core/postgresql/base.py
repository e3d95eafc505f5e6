"""Django's PostgreSQL backend, unchanged but for one thing: with a pool (``DB_POOL_SIZE`` > 0, the
setting selects this backend then), the time each connection took to come out of the pool is
recorded (``core.metrics.record_db_pool_wait``): waits that grow say the pool is too small for the
load, long before requests start failing after DB_POOL_TIMEOUT."""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

from core import metrics


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, object]) -> object:
        """psycopg's connection (Django's own code is all that reads it)."""
        if self.pool is None:
            return super().get_new_connection(conn_params)
        started = time.perf_counter()
        try:
            return super().get_new_connection(conn_params)  # the pool's getconn, a timeout included
        finally:
            metrics.record_db_pool_wait(time.perf_counter() - started)

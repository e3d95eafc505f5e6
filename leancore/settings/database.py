"""The database: DATABASE_URL, PostgreSQL's bounded connection pool, SQLite's locking."""

from __future__ import annotations

import dj_database_url

from leancore.settings.env import BASE_DIR, env_bool, env_int, env_str

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# PostgreSQL: a bounded pool per process (psycopg's, built into Django). A process never holds more
# than DB_POOL_SIZE connections, whatever the concurrency; a request that waits longer than
# DB_POOL_TIMEOUT for one is answered 503 `service_unavailable` with Retry-After. DB_POOL_SIZE=0
# turns the pool off (then DB_CONN_MAX_AGE applies, as it does for SQLite).
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 10)
DB_POOL_TIMEOUT = float(env_str("DB_POOL_TIMEOUT", "10"))
# PostgreSQL: a live turn's start (its session, both messages and its hold) commits without waiting
# for the disk (``synchronous_commit = off`` for that one transaction; chat.turns.start_turn). The
# turn's end waits, and makes its start durable with it. A database crash within a fraction of a
# second of a start loses that start as a whole: nothing was billed, nothing is paid twice.
DB_FAST_TURN_START = env_bool("DB_FAST_TURN_START", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, timestamps read in C and the pool's waits timed (metrics)
    DATABASES["default"]["ENGINE"] = "core.postgresql"
if DATABASES["default"]["ENGINE"] == "core.postgresql" and DB_POOL_SIZE > 0:
    from psycopg_pool import ConnectionPool

    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django must not
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_SIZE),
        "max_size": DB_POOL_SIZE,
        "timeout": DB_POOL_TIMEOUT,
        "max_idle": 300,
        "check": ConnectionPool.check_connection,  # a connection broken by a database restart is replaced
        # While PostgreSQL is down the pool retries with a doubling delay; it gives up after a few
        # seconds, so that a request after the outage tries again at once instead of waiting out
        # a long backoff.
        "reconnect_timeout": 5,
    }
# PostgreSQL: no JIT compilation (DB_JIT=true turns it back on). PostgreSQL compiles a statement with
# LLVM once its estimated cost passes jit_above_cost, and a page of a list whose per-row subquery is
# estimated high (a count of related rows) spent 7-12 ms compiling a statement that runs in 1 ms.
DB_JIT = env_bool("DB_JIT", False)
if DATABASES["default"]["ENGINE"] == "core.postgresql" and not DB_JIT:
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c jit=off".strip()
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent server + worker on one SQLite file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )

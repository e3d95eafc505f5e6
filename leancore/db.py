"""Database phases of async code: one hop to a thread, and the connection given back after it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from asgiref.sync import sync_to_async
from django.db import connections


def release_connections() -> None:
    """Gives this thread's connections back (to the pool, when there is one) unless a transaction
    of the caller is still open: async code must not hold one of the pool's few connections while
    it waits on the network."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


def in_thread[**P, R](fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``fn`` as one thread hop for async code, its connection released after it."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            release_connections()

    return sync_to_async(run)

"""The Redis cache's connections, shared by every thread of the process.

Django keeps one cache object per thread, and under ASGI every request runs its sync code in a new
thread: with the stock client each request opened a new connection pool, and so a new TCP
connection to Redis. One pool per server for the whole process keeps a few warm connections
instead (redis-py's pools are thread-safe and renew themselves after a fork)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import redis


class SharedConnectionPool(redis.ConnectionPool):
    _pools: ClassVar[dict[tuple[str, str], redis.ConnectionPool]] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> redis.ConnectionPool:
        key = (url, repr(sorted(kwargs.items(), key=lambda item: item[0])))
        with cls._lock:
            pool = cls._pools.get(key)
            if pool is None:
                pool = cls._pools[key] = super().from_url(url, **kwargs)
        return pool

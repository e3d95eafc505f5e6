"""The Redis cache's connections, shared by every thread of the process.

Django keeps one cache object per thread, and under ASGI every request runs its sync code in a new
thread: with the stock client each request opened a new connection pool, and so a new TCP
connection to Redis. One pool per server for the whole process keeps a few warm connections
instead (redis-py's pools are thread-safe and renew themselves after a fork)."""

from __future__ import annotations

import functools
import threading
from typing import ClassVar

import redis
from django.core.cache.backends import redis as django_redis


class SharedConnectionPool(redis.ConnectionPool):
    _pools: ClassVar[dict[tuple[str, str], redis.ConnectionPool]] = {}
    _lock = threading.Lock()  # type: ignore[assignment]  # the class's lock; redis-py's pools have one of another type

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> redis.ConnectionPool:  # type: ignore[override]  # the shared pool
        key = (url, repr(sorted(kwargs.items(), key=lambda item: item[0])))
        with cls._lock:
            pool = cls._pools.get(key)
            if pool is None:
                pool = cls._pools[key] = super().from_url(url, **kwargs)
        return pool


class SharedClientRedisCacheClient(django_redis.RedisCacheClient):
    """Django's cache client, but with one ``redis.Redis`` per connection pool instead of a new one
    for every cache call (building one, with its table of reply callbacks, cost a throttled request
    more than the round trip itself). redis-py's clients are safe to share between threads: each
    command takes a connection from the pool and gives it back."""

    @functools.cached_property
    def _redis_clients(self) -> dict[int, redis.Redis]:
        return {}

    def get_client(self, key: str | bytes | memoryview | None = None, *, write: bool = False) -> redis.Redis:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # Django's, not in django-stubs
        client = self._redis_clients.get(id(pool))
        if client is None:
            client = self._redis_clients.setdefault(id(pool), self._client(connection_pool=pool))  # type: ignore[attr-defined]  # Django's
        return client


class RedisCache(django_redis.RedisCache):
    """Django's Redis cache with one client per process: Django makes a cache object per thread
    (a new one per request under ASGI), and building its client each time cost about 2 ms of CPU."""

    _clients: ClassVar[dict[tuple[str, ...], django_redis.RedisCacheClient]] = {}

    def __init__(self, server: str, params: dict[str, object]) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient

    @property
    def _cache(self) -> django_redis.RedisCacheClient:
        key = (*self._servers, repr(sorted(self._options.items())))  # type: ignore[attr-defined]  # Django's
        client = self._clients.get(key)
        if client is None:
            with SharedConnectionPool._lock:
                client = self._clients.setdefault(key, self._class(self._servers, **self._options))  # type: ignore[attr-defined]  # Django's
        return client

    def count_hits(self, keys: list[str], index: int, window: int) -> list[tuple[int, int]]:
        """One hit on each key in fixed window ``index`` (of ``window`` seconds): each key's
        (hits in this window, hits in the one before), in one pipelined round trip."""
        client = self._cache.get_client(write=True)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            current = self.make_and_validate_key(f"{key}:{index}")
            pipe.incr(current)
            pipe.expire(current, 2 * window)
            pipe.get(self.make_and_validate_key(f"{key}:{index - 1}"))
        replies = pipe.execute()
        return [(int(replies[at]), int(replies[at + 2] or 0)) for at in range(0, len(replies), 3)]

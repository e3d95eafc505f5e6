"""Throttles count hits in fixed windows and weigh the last window in (a sliding window), on the
Redis cache in one round trip for several keys, and on the in-process cache of a single process."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache.backends.locmem import LocMemCache

from core import throttles
from core.cache import RedisCache
from tests.servers import redis_url_for_tests

WINDOW_START = 1_800_000_000.0  # a multiple of 60: the start of a one-minute window


@pytest.fixture(params=["redis", "locmem"])
def counting_cache(request, monkeypatch):
    if request.param == "redis":
        backend = RedisCache(redis_url_for_tests(), {"KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex}"})
    else:
        backend = LocMemCache(f"throttle-test-{uuid.uuid4().hex}", {})
    monkeypatch.setattr(throttles, "cache", backend)
    return backend


def _at(monkeypatch, seconds: float) -> None:
    monkeypatch.setattr(throttles.time, "time", lambda: WINDOW_START + seconds)


def test_a_rate_is_a_sliding_window_across_fixed_windows(counting_cache, monkeypatch):
    key = f"k-{uuid.uuid4().hex}"
    _at(monkeypatch, 58)
    assert throttles.over_limit({key: "2/min"}, what="t") is None
    assert throttles.over_limit({key: "2/min"}, what="t") is None
    _at(monkeypatch, 61)  # a new fixed window, but the last one's two hits still weigh ~95 %
    wait = throttles.over_limit({key: "2/min"}, what="t")
    assert wait == pytest.approx(59)
    _at(monkeypatch, 60 + 59)  # most of the window slid past them; the refused hit counts though
    assert throttles.over_limit({key: "2/min"}, what="t") is not None
    _at(monkeypatch, 120 + 30)  # two windows later: the old hits are gone
    assert throttles.over_limit({key: "2/min"}, what="t") is None


def test_several_keys_are_counted_together_and_each_has_its_own_rate(counting_cache, monkeypatch):
    user, org = f"user-{uuid.uuid4().hex}", f"org-{uuid.uuid4().hex}"
    _at(monkeypatch, 1)
    for _ in range(3):
        assert throttles.over_limit({user: "5/min", org: "3/min"}, what="t") is None
    assert throttles.over_limit({user: "5/min", org: "3/min"}, what="t") is not None  # the org's 3
    assert throttles.over_limit({user: "5/min"}, what="t") is None  # the user alone: 5 of 5
    assert throttles.over_limit({user: "5/min"}, what="t") is not None


def test_redis_counts_every_key_in_one_round_trip(monkeypatch):
    backend = RedisCache(redis_url_for_tests(), {"KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex}"})
    client = backend._cache.get_client(write=True)
    calls = []
    pipeline = type(client).pipeline

    def counting(self, *args, **kwargs):
        made = pipeline(self, *args, **kwargs)
        execute = made.execute
        made.execute = lambda *a, **k: calls.append(len(made.command_stack)) or execute(*a, **k)
        return made

    monkeypatch.setattr(type(client), "pipeline", counting)
    monkeypatch.setattr(type(client), "execute_command", lambda *a, **k: pytest.fail("a command outside the pipe"))
    assert backend.count_hits(["a", "b"], 7, 60) == [(1, 0), (1, 0)]
    assert backend.count_hits(["a", "b"], 8, 60) == [(1, 1), (1, 1)]
    assert calls == [6, 6]  # one pipe each time: INCR, EXPIRE and GET of the last window per key


def test_the_redis_cache_builds_one_client_per_connection_pool_and_threads_share_it():
    import threading

    backend = RedisCache(redis_url_for_tests(), {"KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex}"})
    first = backend._cache.get_client(write=True)
    assert backend._cache.get_client(write=True) is first
    seen, counts = [], []

    def hit():
        other = RedisCache(redis_url_for_tests(), {"KEY_PREFIX": backend.key_prefix})  # a thread's own
        seen.append(other._cache.get_client(write=True))
        counts.append(other.count_hits(["shared"], 1, 60)[0][0])

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(client is first for client in seen)
    assert sorted(counts) == list(range(1, 9))  # every hit counted once, through the one client

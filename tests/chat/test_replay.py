"""The replay log (``chat.replay``) and resuming from it (``chat.resume``), on both stores: Redis
Streams (the tests' Redis, and a private one that refuses writes or goes away) and the in-process
store. The seam between the log and the live events is walked at every resume point."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone
from redis import asyncio as aioredis

from chat import replay, resume, watchers
from chat.calls import NO_ID, TurnEvent
from chat.errors import EventsExpiredError, ReplayUnavailableError
from chat.replay import MemoryStore, RedisStore, TurnLog
from chat.resume import TurnState
from core.layers import RedisChannelLayer
from tests.servers import PrivateRedis, redis_url_for_tests

TURN = [
    TurnEvent("session", {"sessionId": "s", "userMessageId": "u", "messageId": "m"}),
    *(TurnEvent("delta", {"text": f"part {i} "}) for i in range(5)),
    TurnEvent("usage", {"inputTokens": 10, "outputTokens": 5, "credits": "0.000100", "balance": "1.000000"}),
    TurnEvent("done", {"messageId": "m", "finishReason": "stop"}),
]
N = len(TURN)
GONE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: every operation fails at once


def _state(message_id: uuid.UUID, status: str = "running", *, ended_ago: float = 0.0, code: str = "") -> TurnState:
    ended = status in ("completed", "failed")
    return TurnState(
        message_id=message_id,
        status=status,
        started=status != "queued" and code != "queue_timeout",
        completed_at=timezone.now() - timedelta(seconds=ended_ago) if ended else None,
        error_code=code,
        error=f"{code} detail" if code else "",
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    """A store of each kind; the Redis one on a client of the test's own loop, under its own prefix."""
    if request.param == "memory":
        yield MemoryStore()
        return
    client = aioredis.Redis.from_url(redis_url_for_tests())
    yield RedisStore(redis=lambda: client, prefix=f"test-{uuid.uuid4().hex[:12]}:")
    await client.aclose()


def _shape(events: list[TurnEvent | None]) -> list[tuple[int, str, dict]]:
    return [(event.id, event.name, event.data) for event in events if event is not None]


async def _followed(state: TurnState, after: int, store) -> list[TurnEvent | None]:
    replayed = await resume.replay_after(state=state, after=after, replay=store)

    async def read_state() -> TurnState:
        return state

    return [event async for event in resume.follow(state=state, replayed=replayed, read_state=read_state, replay=store)]


async def test_a_resume_at_every_event_id_gets_every_later_event_once_in_order(store):
    """For every resume point k (0 = from the start, N = after the last) and every point j the turn
    had reached when the client came back (its log written up to j), the client reads the log and
    then follows the turn live: it gets exactly events k+1 … N, each once, in order, whatever part
    of them was already in the log and whatever arrived later, in batches, while it waited."""
    expected = [(i, event.name, event.data) for i, event in enumerate(TURN, 1)]
    walked = 0
    for k in range(N + 1):
        for j in range(N + 1):
            message_id = uuid.uuid4()
            log = TurnLog(message_id=message_id, group="", replay=store)
            ids = [log.record(event).id for event in TURN[:j]]
            await log.flush()
            reader = asyncio.create_task(_followed(_state(message_id), k, store))
            for event in TURN[j:]:  # the rest of the turn, live: written in batches of two
                ids.append(log.record(event).id)
                if len(ids) % 2 == 0:
                    await log.flush()
                await asyncio.sleep(0)
            await log.flush()
            got = await asyncio.wait_for(reader, timeout=10)
            assert ids == list(range(1, N + 1))
            assert _shape(got) == expected[k:], (k, j)
            walked += 1
    assert walked == (N + 1) ** 2


async def test_a_finished_turn_replays_from_every_id_and_ends(store):
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=store)
    for event in TURN:
        log.record(event)
    await log.flush()
    state = _state(message_id, "completed", ended_ago=1)
    for k in range(N + 3):  # past the last id too: nothing more, the stream ends
        got = await _followed(state, k, store)
        assert [event.id for event in got] == list(range(k + 1, N + 1))


async def test_a_queued_turn_is_waited_for_with_keepalives(store, monkeypatch):
    monkeypatch.setattr(resume, "KEEPALIVE_SECONDS", 0.05)
    message_id = uuid.uuid4()
    reads: list[int] = []
    state = _state(message_id, "queued")

    async def read_state() -> TurnState:
        reads.append(1)
        return state

    replayed = await resume.replay_after(state=state, after=0, replay=store)
    assert (replayed.events, replayed.ended) == ([], False)
    got: list[TurnEvent | None] = []
    follow = resume.follow(state=state, replayed=replayed, read_state=read_state, replay=store)
    got.append(await anext(follow))  # nothing happens: a keep-alive, and the turn's state is read again
    assert got == [None]
    log = TurnLog(message_id=message_id, group="", replay=store)
    for event in TURN:
        log.record(event)
    await log.flush()
    got += [event async for event in follow]
    assert [event.id for event in got if event is not None] == list(range(1, N + 1))
    assert reads


async def test_events_of_a_turn_that_ended_longer_ago_than_the_window_are_410(store, settings):
    settings.STREAM_REPLAY_SECONDS = 60
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=store)
    for event in TURN:
        log.record(event)
    await log.flush()
    recent = await resume.replay_after(state=_state(message_id, "completed", ended_ago=59), after=0, replay=store)
    assert len(recent.events) == N
    with pytest.raises(EventsExpiredError):
        await resume.replay_after(state=_state(message_id, "completed", ended_ago=61), after=0, replay=store)


async def test_a_turn_whose_process_died_ends_with_the_error_it_was_failed_with(store):
    """Maintenance failed the turn (worker_lost): what its process wrote, then that error."""
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=store)
    for event in TURN[:3]:
        log.record(event)
    await log.flush()
    lost = _state(message_id, "failed", ended_ago=10, code="worker_lost")
    got = await _followed(lost, 1, store)
    assert [(event.id, event.name) for event in got] == [(2, "delta"), (3, "delta"), (4, "error")]
    assert got[-1].data == {"code": "worker_lost", "detail": "worker_lost detail"}
    # one that never ran (no log at all): its error, as the first event
    never = _state(uuid.uuid4(), "failed", ended_ago=10, code="queue_timeout")
    assert _shape(await _followed(never, 0, store)) == [
        (1, "error", {"code": "queue_timeout", "detail": "queue_timeout detail"})
    ]
    # maintenance writes that error into the log itself (``end_turn``): the same id, once
    for state in (lost, never):
        error = TurnEvent("error", {"code": state.error_code, "detail": state.error})
        expected = _shape(await _followed(state, 0, store))
        await replay.end_turn(message_id=state.message_id, group="", event=error, replay=store)
        await replay.end_turn(message_id=state.message_id, group="", event=error, replay=store)  # already ended
        assert (await store.read(str(state.message_id), after=0)).ended
        assert _shape(await _followed(state, 0, store)) == expected


async def test_a_turn_that_ended_a_moment_ago_without_its_last_events_is_waited_for(store, monkeypatch):
    """The message is written before the turn's last events are: within SETTLE_SECONDS of its end a
    log without them is still followed, not answered as incomplete."""
    monkeypatch.setattr(resume, "KEEPALIVE_SECONDS", 0.05)
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=store)
    for event in TURN[:-2]:
        log.record(event)
    await log.flush()
    just_ended = _state(message_id, "completed", ended_ago=0)
    reader = asyncio.create_task(_followed(just_ended, 0, store))
    await asyncio.sleep(0.1)
    for event in TURN[-2:]:
        log.record(event)
    await log.flush()
    assert [event.id for event in await asyncio.wait_for(reader, 10) if event is not None] == list(range(1, N + 1))


async def test_the_cap_drops_the_oldest_events_and_a_resume_before_them_is_410(store, monkeypatch):
    monkeypatch.setattr(replay, "MAX_EVENTS_PER_TURN", 100)
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=store)
    for i in range(1000):
        log.record(TurnEvent("delta", {"text": str(i)}))
    log.record(TurnEvent("done", {"messageId": str(message_id), "finishReason": "stop"}))
    await log.flush()
    kept = await store.read(str(message_id), after=0)
    assert kept is not None
    assert 100 <= kept.last_id - kept.first_id + 1 <= 300  # Redis trims whole nodes ("~"); memory exactly
    state = _state(message_id, "completed", ended_ago=1)
    with pytest.raises(EventsExpiredError):
        await resume.replay_after(state=state, after=0, replay=store)
    tail = await resume.replay_after(state=state, after=990, replay=store)
    assert [event.id for event in tail.events] == list(range(991, 1002))


async def test_redis_keeps_a_turn_in_one_entry_a_batch_and_expiring(settings, monkeypatch):
    """One stream entry a batch (its id: the batch's last event's), the expiry set by the first and
    the last batch and renewed by the others only once EXPIRY_RENEW_SECONDS have passed."""
    settings.STREAM_REPLAY_SECONDS = 30
    settings.TURN_LEASE_SECONDS = 60
    monkeypatch.setattr(replay, "EXPIRY_RENEW_SECONDS", 3600)
    client = aioredis.Redis.from_url(redis_url_for_tests())
    store = RedisStore(redis=lambda: client, prefix=f"test-{uuid.uuid4().hex[:12]}:")
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=store)
    for event in TURN[:3]:
        log.record(event)
    await log.flush()
    key = store.key(str(message_id))
    assert 30 < await client.ttl(key) <= 90  # while it runs: the window and a lease
    await client.persist(key)
    for event in TURN[3:-1]:
        log.record(event)
    await log.flush()
    assert await client.ttl(key) == -1  # a batch within EXPIRY_RENEW_SECONDS of the first left it as it was
    log.record(TURN[-1])
    await log.flush()
    assert 0 < await client.ttl(key) <= 30  # ended: the window from now
    entries = await client.xrange(key)
    assert [entry_id for entry_id, _ in entries] == [b"3-0", f"{N - 1}-0".encode(), replay.FINAL_ENTRY_ID.encode()]
    kept = await store.read(str(message_id), after=0)
    assert kept is not None
    assert [event.id for event in kept.events] == list(range(1, N + 1))
    assert (kept.first_id, kept.last_id, kept.ended) == (1, N, True)
    assert [event.id for event in await store.wait(str(message_id), after=2, seconds=1)] == list(range(3, N + 1))
    await client.aclose()


async def test_a_log_the_release_before_wrote_is_not_read_as_batches(settings):
    """The release before kept an event an entry under ``replay:``; batches live under a key of their
    own, so a process of either release never reads the other's entries as its own (while both run,
    a resume served across them finds nothing kept rather than wrong events)."""
    client = aioredis.Redis.from_url(redis_url_for_tests())
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    store = RedisStore(redis=lambda: client, prefix=prefix)
    old_key = f"{prefix}replay:old"
    for event_id, event in enumerate(TURN, start=1):
        await client.xadd(old_key, {"e": event.name, "d": json.dumps(event.data)}, id=f"{event_id}-0")
    assert store.key("old") != old_key
    assert await store.read("old", after=0) is None
    await client.delete(old_key)
    await client.aclose()


async def test_redis_going_away_degrades_the_log_never_the_turn(caplog):
    """Writes to a Redis that is gone fail once per turn (logged), then the turn's events are no
    longer written (the log stays a gapless prefix); reading it answers 503, never a history."""
    gone = aioredis.Redis.from_url(GONE_REDIS)
    store = RedisStore(redis=lambda: gone)
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=store)
    numbered = [log.record(event) for event in TURN]  # the turn's own stream never waits on the log
    assert [event.id for event in numbered] == list(range(1, N + 1))
    await asyncio.wait_for(log.flush(), 10)
    assert log.replay is None
    assert "not kept for replay" in caplog.text
    with pytest.raises(ReplayUnavailableError):
        await resume.replay_after(state=_state(message_id), after=0, replay=store)
    with pytest.raises(ReplayUnavailableError):
        await store.wait(str(message_id), after=0, seconds=0.1)


async def test_a_follower_that_loses_the_log_ends_with_an_error_without_an_id_and_a_reconnect_misses_nothing():
    """The log's connection fails under a follower (a Redis that is not there, for one read): its
    stream ends with an ``error`` that is not a turn's event, so it carries no ``id:`` and does
    not move the client's last id; reconnecting with that Last-Event-ID (what EventSource does)
    gets every later event of the turn, the one with the next id included."""
    from chat.event_views import _sse

    client = aioredis.Redis.from_url(redis_url_for_tests())
    gone = aioredis.Redis.from_url(GONE_REDIS)
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    clients = iter([client, gone])  # replay_after reads, the follower's first wait fails, then all is well
    store = RedisStore(redis=lambda: next(clients, client), prefix=prefix)
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=RedisStore(redis=lambda: client, prefix=prefix))
    for event in TURN[:2]:
        log.record(event)
    await log.flush()
    state = _state(message_id)
    replayed = await resume.replay_after(state=state, after=0, replay=store)

    async def read_state() -> TurnState:
        return state

    frames = [
        frame
        async for frame in _sse(resume.follow(state=state, replayed=replayed, read_state=read_state, replay=store))
    ]
    assert [frame.split(b"\n")[0] for frame in frames[:2]] == [b"id: 1", b"id: 2"]
    assert frames[-1].startswith(b"event: error\n"), frames[-1]  # no id: line
    assert b'"code":"service_unavailable"' in frames[-1]
    for event in TURN[2:]:  # meanwhile the turn went on
        log.record(event)
    await log.flush()
    last_event_id = 2  # the last id the client saw
    again = await resume.replay_after(state=state, after=last_event_id, replay=store)
    assert [event.id for event in again.events] == list(range(3, N + 1))
    await client.aclose()
    await gone.aclose()


async def test_a_log_whose_writes_were_refused_mid_turn_answers_503_not_a_wrong_history(tmp_path):
    """A real Redis that refuses writes (out of memory) after the turn's first batch: the turn goes
    on; once it is over, its incomplete log is answered 503, a prefix is never passed off as the turn."""
    private = PrivateRedis(tmp_path)
    try:
        client = aioredis.Redis.from_url(private.url)
        store = RedisStore(redis=lambda: client)
        message_id = uuid.uuid4()
        log = TurnLog(message_id=message_id, group="", replay=store)
        for event in TURN[:3]:
            log.record(event)
        await log.flush()
        await client.config_set("maxmemory", "1")  # every write is refused from here on
        for event in TURN[3:]:
            log.record(event)
        await log.flush()
        await client.config_set("maxmemory", "0")
        assert log.replay is None
        running = await resume.replay_after(state=_state(message_id), after=0, replay=store)
        assert [event.id for event in running.events] == [1, 2, 3]  # what was kept, while the turn runs
        over = _state(message_id, "completed", ended_ago=10)
        with pytest.raises(ReplayUnavailableError):
            await resume.replay_after(state=over, after=0, replay=store)
        await client.aclose()
    finally:
        private.kill()


async def test_the_live_fan_out_asks_for_watchers_once_in_a_while_and_reaches_one_that_joins(monkeypatch):
    """Whether anyone watches is asked at most every WATCHERS_RECHECK_SECONDS (a send to an empty
    Redis group costs two round trips), always for the turn's last batch; a channel that joins
    mid-turn gets the batches from then on, each with its events' ids."""
    layer = RedisChannelLayer(hosts=[redis_url_for_tests()])
    monkeypatch.setattr(watchers, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(watchers, "WATCHERS_RECHECK_SECONDS", 3600)
    group = f"session-test-{uuid.uuid4().hex}"
    asked = []
    original = layer.has_members

    async def counting(name):
        asked.append(name)
        return await original(name)

    layer.has_members = counting
    log = TurnLog(message_id=uuid.uuid4(), group=group, replay=MemoryStore())
    for event in TURN[:3]:
        log.record(event)
        await log.flush()
    assert len(asked) == 1  # asked once, nobody there, nothing sent
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    for event in TURN[3:]:
        log.record(event)
    await log.flush()  # the last batch: asked again, and sent
    received = await asyncio.wait_for(layer.receive(channel), timeout=5)
    assert received["type"] == "chat.events"
    assert [seq for seq, _, _ in received["events"]] == list(range(4, N + 1))
    assert len(asked) == 2
    await layer.group_discard(group, channel)
    await layer.close_pools()


async def test_a_channel_layer_that_does_not_answer_is_left_alone(monkeypatch):
    """A layer that hangs: one batch waits for it (PUBLISH_TIMEOUT_SECONDS), the next ones skip it
    (PUBLISH_BACKOFF_SECONDS), the turn's last batch tries it again."""

    class Hanging:
        calls = 0

        async def group_send(self, group, message):
            Hanging.calls += 1
            await asyncio.sleep(3600)

    monkeypatch.setattr(watchers, "get_channel_layer", Hanging)
    monkeypatch.setattr(watchers, "PUBLISH_TIMEOUT_SECONDS", 0.1)
    log = TurnLog(message_id=uuid.uuid4(), group="session-gone", replay=MemoryStore())
    for event in TURN:
        log.record(event)
        await asyncio.wait_for(log.flush(), 10)
    assert Hanging.calls == 2  # the first batch, then the last


async def test_a_turn_nobody_watches_live_is_written_in_longer_batches(monkeypatch):
    """Batches are FLUSH_SECONDS apart while the session has a watcher (and before anyone was asked),
    UNWATCHED_FLUSH_SECONDS while it has none: fewer round trips for a turn only its stream reads."""

    class Layer:
        members = False

        async def has_members(self, group):
            return self.members

        async def group_send(self, group, message):
            pass

    layer = Layer()
    monkeypatch.setattr(watchers, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(watchers, "WATCHERS_RECHECK_SECONDS", 0)
    loop = asyncio.get_running_loop()
    log = TurnLog(message_id=uuid.uuid4(), group="session-x", replay=MemoryStore())

    def delay() -> float:
        assert log.timer is not None
        return log.timer.when() - loop.time()

    log.record(TURN[0])
    assert delay() == pytest.approx(replay.FLUSH_SECONDS, abs=0.02)
    await log.flush()  # asked: nobody watches
    log.record(TURN[1])
    assert delay() == pytest.approx(replay.UNWATCHED_FLUSH_SECONDS, abs=0.02)
    await log.flush()
    layer.members = True
    log.record(TURN[2])
    await log.flush()  # asked again: a watcher now
    log.record(TURN[3])
    assert delay() == pytest.approx(replay.FLUSH_SECONDS, abs=0.02)
    await log.flush()


async def test_a_turn_failed_by_maintenance_while_its_process_still_writes_ends_once(store, caplog):
    """Maintenance ends the log (``end_turn``: ``error`` numbered after the last kept event) of a turn
    whose process is still writing: the process's later batches are refused, no id is kept twice,
    and a follower stops at the first ending."""
    message_id = uuid.uuid4()
    live = TurnLog(message_id=message_id, group="", replay=store)
    for event in TURN[:5]:
        live.record(event)
    await live.flush()
    lost = TurnEvent("error", {"code": "worker_lost", "detail": "lost"})
    await replay.end_turn(message_id=message_id, group="", event=lost, replay=store)
    for event in TURN[5:]:  # ids 6, 7, 8 of the process that was taken for lost
        live.record(event)
    await live.flush()
    kept = await store.read(str(message_id), after=0)
    assert kept is not None
    assert [(event.id, event.name) for event in kept.events] == [
        *((i, event.name) for i, event in enumerate(TURN[:5], start=1)),
        (6, "error"),
    ]
    assert kept.ended
    assert live.replay is None  # its writes were refused: it keeps nothing more
    running = _state(message_id, "running")
    assert _shape(await _followed(running, 3, store)) == [
        (4, "delta", TURN[3].data),
        (5, "delta", TURN[4].data),
        (6, "error", lost.data),
    ]


async def test_a_running_turns_log_expiry_is_renewed_within_half_of_it_and_by_its_heartbeat(settings):
    """A small window: a batch renews the running log's expiry once half of it passed (not only every
    EXPIRY_RENEW_SECONDS); a silent turn's heartbeat (``TurnLog.keep``) renews it too."""
    settings.STREAM_REPLAY_SECONDS = 1
    settings.TURN_LEASE_SECONDS = 3
    client = aioredis.Redis.from_url(redis_url_for_tests())
    store = RedisStore(redis=lambda: client, prefix=f"test-{uuid.uuid4().hex[:12]}:")
    log = TurnLog(message_id=uuid.uuid4(), group="", replay=store)
    key = store.key(log.key)
    log.record(TURN[0])
    await log.flush()
    assert 0 < await client.ttl(key) <= 4
    await client.persist(key)
    log.record(TURN[1])
    await log.flush()
    assert await client.ttl(key) == -1  # within half of the 4 s: left as it was
    log.expiry_set_at -= 2.1  # half of it passed
    log.record(TURN[2])
    await log.flush()
    assert 0 < await client.ttl(key) <= 4
    await client.persist(key)
    await log.keep()  # the heartbeat of a turn that says nothing
    assert 0 < await client.ttl(key) <= 4
    await client.aclose()


async def test_a_follower_whose_log_lost_events_meanwhile_ends_with_an_error_without_an_id(monkeypatch):
    """The log of a running turn expired and began again past the events the follower had: it is
    not given the later events as if nothing were missing, but an ``error`` without an id."""
    monkeypatch.setattr(resume, "KEEPALIVE_SECONDS", 0.05)
    memory = MemoryStore()
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=memory)
    log.record(TURN[0])
    await log.flush()
    running = _state(message_id, "running")
    follower = asyncio.create_task(_followed(running, 0, memory))
    await asyncio.sleep(0.1)
    memory._turns.pop(str(message_id))  # expired
    await memory.append(str(message_id), [replace(TURN[3], id=4), replace(TURN[4], id=5)], keep_seconds=60)
    got = await asyncio.wait_for(follower, 10)
    assert [(event.id, event.name) for event in got if event is not None] == [
        (1, "session"),
        (NO_ID, "error"),
    ]
    assert got[-1].data["code"] == "events_expired"


async def test_every_heartbeat_of_a_running_turn_renews_its_log(settings, monkeypatch):
    """The turn's keep-alive (``chat.pipeline``) renews its replay log's expiry at every beat, the
    database's beat failing or not: a turn that says nothing for longer than its window keeps its log."""
    from chat import pipeline

    settings.TURN_HEARTBEAT_SECONDS = 0.02
    beats: list[uuid.UUID] = []

    async def beat(*, message_id: uuid.UUID) -> None:
        beats.append(message_id)
        if len(beats) % 2:
            raise ConnectionError("the database is briefly away")

    monkeypatch.setattr(pipeline, "_beat", beat)
    client = aioredis.Redis.from_url(redis_url_for_tests())
    store = RedisStore(redis=lambda: client, prefix=f"test-{uuid.uuid4().hex[:12]}:")
    message_id = uuid.uuid4()
    log = TurnLog(message_id=message_id, group="", replay=store)
    log.record(TURN[0])
    await log.flush()
    key = store.key(log.key)
    await client.persist(key)
    keeper = asyncio.create_task(pipeline._keep_alive(message_id, log))
    try:
        for _ in range(200):
            if len(beats) >= 2 and await client.ttl(key) > 0:
                break
            await asyncio.sleep(0.01)
    finally:
        keeper.cancel()
    assert beats[:2] == [message_id, message_id]
    assert await client.ttl(key) > 0  # renewed by a beat, not by a batch (none was written)
    await client.aclose()

"""The replay log: every event of every turn, with its per-turn id (1, 2, 3, …), kept from the
turn's start until STREAM_REPLAY_SECONDS after it ends, where every server process can read it.

``TurnLog`` is the one place a turn's events get their ids. It writes them to the log and then
hands the same batch to the session's channel-layer group (WebSocket watchers): whatever a watcher
sees live is already in the log, so a reader that fills a gap from the log always finds it there.
Writes are batched (one Redis round trip per batch of events, not per event: FLUSH_SECONDS apart
while someone watches the session live, UNWATCHED_FLUSH_SECONDS while nobody does) and never delay
the turn: its own stream yields each event at once; only its end waits for the last batch.

The log is Redis Streams when ``REDIS_URL`` is set (one stream per assistant message, one entry per
batch of at most EVENTS_PER_ENTRY events whose id is ``<its last event's id>-0``, the events before
the last MAX_EVENTS_PER_TURN dropped, expiring), else a store in this process (the single-process
quick start). A write that fails leaves the rest of that turn's events out of the
log (it stays a gapless prefix): the turn itself goes on."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from channels.layers import get_channel_layer
from django.conf import settings
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT, StreamRangeResponse, XReadResponse

from chat.calls import TurnEvent
from chat.errors import ReplayUnavailableError
from chat.watchers import Watchers
from core.json_types import compact_json

logger = logging.getLogger(__name__)

FINAL_EVENTS = frozenset({"done", "error"})
FLUSH_SECONDS = 0.05  # while a watcher is there, a turn's events are written (and fanned out) this soon
UNWATCHED_FLUSH_SECONDS = 0.25  # while nobody watches the session live, this soon (a resume follows the log)
MAX_EVENTS_PER_TURN = 10_000  # the oldest are dropped past this (a resume before them is 410)
EVENTS_PER_ENTRY = 100  # a Redis stream entry holds a batch of at most this many events
EXPIRY_RENEW_SECONDS = 10.0  # a running turn's log has its expiry renewed by a batch at most this often
# The entry id of a batch that ends its turn: the largest there is, so that Redis refuses any entry
# after it (a turn failed by maintenance while its process still writes: one ending, no id twice).
FINAL_ENTRY_ID = f"{2**64 - 1}-0"
WRITE_TIMEOUT_SECONDS = 1.0  # a log slower than this is given up for the batch
READ_TIMEOUT_SECONDS = 2.0  # a read of the log (beyond its blocking wait) slower than this is a 503
SWEEP_SECONDS = 10.0  # the in-process store drops expired turns at most this often


def kept_seconds(*, ended: bool) -> int:
    """How long a turn's log lives after its expiry was last set: STREAM_REPLAY_SECONDS once it
    ended; while it runs, longer by a lease (its batches and its heartbeats set it again)."""
    window = settings.STREAM_REPLAY_SECONDS
    return window if ended else window + math.ceil(settings.TURN_LEASE_SECONDS)


@dataclass(frozen=True, slots=True)
class Kept:
    """What the log holds of a turn: its first and last kept ids, whether its last event is final,
    and its events after the id asked for."""

    first_id: int
    last_id: int
    ended: bool
    events: list[TurnEvent]


class ReplayStore(Protocol):
    async def append(self, key: str, events: Sequence[TurnEvent], *, keep_seconds: int | None) -> None:
        """Adds ``events`` (numbered after those kept); the log then expires ``keep_seconds`` from now
        (None: its expiry stays as it was set)."""

    async def read(self, key: str, *, after: int) -> Kept | None:
        """None: nothing is kept of that turn (not started, expired, or never written)."""

    async def wait(self, key: str, *, after: int, seconds: float) -> list[TurnEvent]:
        """The events after ``after`` as soon as there are any, else [] after ``seconds``."""


# --- Redis Streams ---------------------------------------------------------------------------


def _events_of(entry_id: bytes | str | None, fields: Mapping[bytes | str, bytes | str] | None) -> list[TurnEvent]:
    """A stream entry's events (``redis.typing.StreamEntry``: bytes, or str when decoded): its batch
    (``b``: ``[[id, name, data], …]``)."""
    batch = None if entry_id is None or fields is None else fields.get(b"b", fields.get("b"))
    if batch is None:  # what Redis answers for an entry deleted meanwhile
        raise ReplayUnavailableError
    return [TurnEvent(name, data, id=seq) for seq, name, data in json.loads(batch)]


def _after(entries: StreamRangeResponse, after: int) -> list[TurnEvent]:
    """The events after ``after`` in entries (an entry may begin before it)."""
    return [event for entry in entries for event in _events_of(*entry) if event.id > after]


def _channel_layer_redis() -> Redis:
    """A Redis client of this event loop: the channel layer's (channels_redis keeps one pool per
    loop and closes it with the loop), so the log adds no connection of its own."""
    connection = getattr(get_channel_layer(), "connection", None)
    if connection is None:
        raise ReplayUnavailableError("REDIS_URL is set but the channel layer is not Redis.")
    client: Redis = connection(0)  # channels_redis ships no types
    return client


class RedisStore:
    """One stream per turn, one entry per batch; an entry's id is its last event's (``<id>-0``, the
    largest id for the batch that ends the turn), so that a batch written twice, or after the turn's
    end, is refused by Redis rather than kept, and a read after an id starts at the entry that holds
    the next one."""

    def __init__(self, redis: Callable[[], Redis] = _channel_layer_redis, prefix: str = "") -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, key: str) -> str:
        return f"{self.prefix}replay-batches:{key}"  # not the release before's ``replay:`` (an event an entry)

    async def append(self, key: str, events: Sequence[TurnEvent], *, keep_seconds: int | None) -> None:
        name = self.key(key)
        redis = self.redis()
        if not events and keep_seconds is None:
            return
        if len(events) <= EVENTS_PER_ENTRY and keep_seconds is None:  # the usual batch: one command
            fields, entry_id, minid = self._entry(events)
            await redis.xadd(name, fields, id=entry_id, minid=minid, approximate=False)
            return
        pipe = redis.pipeline(transaction=False)
        for start in range(0, len(events), EVENTS_PER_ENTRY):
            fields, entry_id, minid = self._entry(events[start : start + EVENTS_PER_ENTRY])
            pipe.xadd(name, fields, id=entry_id, minid=minid, approximate=False)
        if keep_seconds is not None:
            pipe.expire(name, keep_seconds)
        await pipe.execute()

    @staticmethod
    def _entry(events: Sequence[TurnEvent]) -> tuple[dict[FieldT, EncodableT], str, int]:
        """The stream entry holding ``events``: its fields, its id (the last event's, or FINAL_ENTRY_ID
        when that event ends the turn) and the MINID that drops the entries whose events all precede
        the last MAX_EVENTS_PER_TURN."""
        last = events[-1]
        batch = compact_json([[event.id, event.name, event.data] for event in events])
        entry_id = FINAL_ENTRY_ID if last.name in FINAL_EVENTS else f"{last.id}-0"
        return {"b": batch}, entry_id, max(0, last.id - MAX_EVENTS_PER_TURN + 1)

    async def read(self, key: str, *, after: int) -> Kept | None:
        name = self.key(key)
        try:
            pipe = self.redis().pipeline(transaction=True)  # one moment's view: the last id and what follows agree
            pipe.xrange(name, "-", "+", count=1)
            pipe.xrevrange(name, "+", "-", count=1)
            pipe.xrange(name, f"{after + 1}-0", "+")
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                first, last, rest = await pipe.execute()
        except Exception as exc:
            raise ReplayUnavailableError from exc
        if not first or not last:
            return None
        last_event = _events_of(*last[0])[-1]
        return Kept(
            first_id=_events_of(*first[0])[0].id,
            last_id=last_event.id,
            ended=last_event.name in FINAL_EVENTS,
            events=_after(rest, after),
        )

    async def wait(self, key: str, *, after: int, seconds: float) -> list[TurnEvent]:
        name = self.key(key)
        try:  # blocks on a key that does not exist yet too (a queued turn's)
            async with asyncio.timeout(seconds + READ_TIMEOUT_SECONDS):
                found = await self.redis().xread({name: f"{after}-0"}, block=max(1, int(seconds * 1000)))
        except Exception as exc:
            raise ReplayUnavailableError from exc
        return _after(_entries(found), after)


def _entries(found: XReadResponse | None) -> StreamRangeResponse:
    """The entries of one stream in an XREAD reply: ``[[name, entries]]`` (RESP2) or
    ``{name: [entries]}`` (RESP3); nothing when the block timed out."""
    if not found:
        return []
    if isinstance(found, list):
        return list(found[0][1])
    resp3 = cast(dict[bytes | str, list[StreamRangeResponse]], found)  # one of redis-py's two dict shapes
    return list(next(iter(resp3.values()))[0])


# --- In this process ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Turn:
    events: list[TurnEvent] = field(default_factory=list)
    expires_at: float = math.inf


class MemoryStore:
    """The log in this process (no Redis): readable by every thread of it (the embedded worker's
    turns included), not by other processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: dict[str, _Turn] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._swept_at = time.monotonic()

    def _sweep(self, now: float) -> None:
        if now - self._swept_at >= SWEEP_SECONDS:
            self._swept_at = now
            for gone in [key for key, turn in self._turns.items() if turn.expires_at <= now]:
                del self._turns[gone]

    def _alive(self, key: str, now: float) -> _Turn | None:
        turn = self._turns.get(key)
        return turn if turn is not None and turn.expires_at > now else None

    async def append(self, key: str, events: Sequence[TurnEvent], *, keep_seconds: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            turn = self._turns.setdefault(key, _Turn())
            if events and turn.events and turn.events[-1].name in FINAL_EVENTS:
                raise ReplayUnavailableError("The log of this turn has ended.")  # as Redis refuses them
            turn.events.extend(events)
            del turn.events[:-MAX_EVENTS_PER_TURN]
            if keep_seconds is not None or turn.expires_at == math.inf:
                turn.expires_at = now + (keep_seconds or kept_seconds(ended=False))
            waiters = self._waiters.pop(key, [])
        for loop, waiter in waiters:
            loop.call_soon_threadsafe(_wake, waiter)

    def _after(self, turn: _Turn | None, after: int) -> list[TurnEvent]:
        if turn is None or not turn.events:
            return []
        return turn.events[max(0, after - turn.events[0].id + 1) :]

    async def read(self, key: str, *, after: int) -> Kept | None:
        with self._lock:
            turn = self._alive(key, time.monotonic())
            if turn is None or not turn.events:
                return None
            first, last = turn.events[0], turn.events[-1]
            return Kept(first.id, last.id, last.name in FINAL_EVENTS, self._after(turn, after))

    async def wait(self, key: str, *, after: int, seconds: float) -> list[TurnEvent]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            found = self._after(self._alive(key, time.monotonic()), after)
            if found:
                return found
            self._waiters.setdefault(key, []).append((loop, waiter))
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            with self._lock:
                waiting = self._waiters.get(key, [])
                if (loop, waiter) in waiting:
                    waiting.remove((loop, waiter))
                if not waiting:
                    self._waiters.pop(key, None)
            return []
        with self._lock:
            return self._after(self._alive(key, time.monotonic()), after)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_memory = MemoryStore()


def store() -> ReplayStore:
    """The log every process of this deployment reads: Redis with ``REDIS_URL``, else this process's."""
    if settings.REDIS_URL:
        return RedisStore(prefix=settings.REDIS_KEY_PREFIX)
    return _memory


# --- Writing a turn's events ---------------------------------------------------------------------


class TurnLog:
    """A turn's events: numbered here (``record``, at once), then written to the replay log and
    fanned out to the session's watchers in batches, in order (a batch waits for the one before it).
    ``flush`` writes what is left; the turn awaits it once, at its end."""

    def __init__(self, *, message_id: object, group: str, replay: ReplayStore | None = None) -> None:
        self.key = str(message_id) if message_id is not None else ""
        self.replay = (replay or store()) if self.key else None
        self.watchers = Watchers(group, self.key)
        self.seq = 0
        self.last_name = ""
        self.pending: list[TurnEvent] = []
        self.timer: asyncio.TimerHandle | None = None
        self.writing: asyncio.Future[None] | None = None
        self.expiry_set_at = -math.inf  # when a batch last set the log's expiry

    @property
    def ended(self) -> bool:
        """Whether the turn's last event (``done`` or ``error``) was recorded."""
        return self.last_name in FINAL_EVENTS

    def record(self, event: TurnEvent) -> TurnEvent:
        """The event with its id; written and fanned out within FLUSH_SECONDS (UNWATCHED_FLUSH_SECONDS
        while nobody watches the session live)."""
        self.seq += 1
        self.last_name = event.name
        numbered = replace(event, id=self.seq)
        self.pending.append(numbered)
        if self.timer is None:
            delay = FLUSH_SECONDS if self.watchers.watched else UNWATCHED_FLUSH_SECONDS
            self.timer = asyncio.get_running_loop().call_later(delay, self._flush)
        return numbered

    def _flush(self) -> asyncio.Future[None]:
        self.timer = None
        batch, self.pending = self.pending, []
        self.writing = asyncio.ensure_future(self._write(batch, self.writing))
        return self.writing

    async def _write(self, batch: list[TurnEvent], before: asyncio.Future[None] | None) -> None:
        if before is not None:
            await before  # never raises: batches go out in order
        if not batch:
            return
        final = batch[-1].name in FINAL_EVENTS
        if self.replay is not None:
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                    await self.replay.append(self.key, batch, keep_seconds=self._keep_seconds(final=final))
            except Exception as exc:  # the log degrades, the turn does not: nothing more of it is kept
                logger.warning("Turn %s: events from %s on not kept for replay: %r", self.key, batch[0].id, exc)
                self.replay = None
        await self.watchers.send(batch, final=final)

    def _keep_seconds(self, *, final: bool) -> int | None:
        """The expiry a batch sets: the first and the last batch always, the others when the last one
        set is EXPIRY_RENEW_SECONDS old, or half the running turn's expiry (its window and a lease) when
        that is shorter."""
        now = time.monotonic()
        running = kept_seconds(ended=False)
        if not final and now - self.expiry_set_at < min(EXPIRY_RENEW_SECONDS, running / 2):
            return None
        self.expiry_set_at = now
        return kept_seconds(ended=True) if final else running

    async def keep(self) -> None:
        """Renews a running turn's log expiry (the turn's heartbeat: a turn silent for longer than its
        window, a model thinking, keeps its log)."""
        if self.replay is None or self.ended:
            return
        try:  # the batches keep their own pace (a beat before the first batch must not spare its expiry)
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                await self.replay.append(self.key, [], keep_seconds=kept_seconds(ended=False))
        except Exception as exc:  # the next batch or beat tries again
            logger.warning("Turn %s: the expiry of its replay log not renewed: %r", self.key, exc)

    async def flush(self) -> None:
        """Writes the events not written yet and waits for them (the turn's end awaits it once)."""
        if self.timer is not None:
            self.timer.cancel()
        if self.pending or self.writing is not None:
            await asyncio.shield(self._flush())


_LAST_ONLY = 2**63 - 2  # an id past any turn's events: a read that wants only the log's last id


async def end_turn(*, message_id: object, group: str, event: TurnEvent, replay: ReplayStore | None = None) -> None:
    """Ends the log of a turn failed from outside its process (maintenance, or a worker that could not
    run it) with ``event``: numbered after the last event the log kept, which is the id a resume
    gives that error when it is missing from the log (``chat.resume``), then written and fanned out
    by a ``TurnLog`` like the turn's own events. Nothing is written when the log already ended, or
    cannot be read (the message still says how the turn ended; a resume tells it)."""
    log = TurnLog(message_id=message_id, group=group, replay=replay)
    if log.replay is not None:
        try:
            kept = await log.replay.read(log.key, after=_LAST_ONLY)
        except ReplayUnavailableError as exc:
            logger.warning("Turn %s: its final event not kept nor published, the log cannot be read: %r", log.key, exc)
            return
        if kept is not None and kept.ended:
            return
        log.seq = kept.last_id if kept is not None else 0
    log.record(event)
    await log.flush()

"""The live fan-out of a turn's events to its session's channel-layer group (WebSocket watchers):
``chat.replay.TurnLog`` hands each batch here once it is in the replay log."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TypedDict

from channels.layers import get_channel_layer

from chat.calls import TurnEvent
from core.json_types import JSONObject

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 1.0  # a channel layer slower than this is given up for the batch
PUBLISH_BACKOFF_SECONDS = 5.0  # a channel layer that failed is left alone this long (final events still go)
WATCHERS_RECHECK_SECONDS = 0.5  # whether anyone watches the session is asked this often, not per batch
CHAT_EVENTS = "chat.events"  # the group message of a batch (``ChatEventsMessage``)


class ChatEventsMessage(TypedDict):
    """A batch of a turn's events as the session's group receives it: ``[id, name, data]`` each."""

    type: str
    message_id: str
    events: list[tuple[int, str, JSONObject]]


class Watchers:
    """The live fan-out to the session's channel-layer group. Whether anyone watches is asked at
    most every WATCHERS_RECHECK_SECONDS (and always for a turn's last batch); a layer that fails or
    does not answer within PUBLISH_TIMEOUT_SECONDS is left alone for PUBLISH_BACKOFF_SECONDS, except
    for the turn's last batch."""

    def __init__(self, group: str, message_id: str) -> None:
        self.group = group
        self.message_id = message_id
        self.layer = get_channel_layer() if group else None
        self.asked_at = -math.inf
        self.watched = self.layer is not None  # until asked: a session group may have watchers
        self.resume_at = -math.inf

    async def send(self, batch: list[TurnEvent], *, final: bool) -> None:
        if self.layer is None:
            return
        now = time.monotonic()
        due = final or now - self.asked_at >= WATCHERS_RECHECK_SECONDS
        if (not self.watched and not due) or (now < self.resume_at and not final):
            return  # nobody watched a moment ago (no round trip), or the layer is being left alone
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                if due:
                    has_members = getattr(self.layer, "has_members", None)
                    self.watched = True if has_members is None else await has_members(self.group)
                    self.asked_at = time.monotonic()
                if self.watched:
                    events = [(event.id, event.name, event.data) for event in batch]
                    message = ChatEventsMessage(type=CHAT_EVENTS, message_id=self.message_id, events=events)
                    await self.layer.group_send(self.group, message)
        except Exception as exc:  # a watcher channel must never break or stall the turn
            logger.warning("Events of %s not published for %s s: %r", self.group, PUBLISH_BACKOFF_SECONDS, exc)
            self.resume_at = time.monotonic() + PUBLISH_BACKOFF_SECONDS

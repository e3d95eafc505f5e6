"""An in-memory channel layer that a background thread of the same process can publish to.

Without Redis the channel layer lives in one process. The quick start runs the background
worker as a thread of the server process (EMBEDDED_WORKER), and that thread runs its own
event loop: this layer hands its operations to the loop the consumers listen on, so async
turns reach WebSocket watchers live. Multi-process deployments use channels_redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.exceptions import RedisError


class ProcessChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]  # channels ships no types
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._home: asyncio.AbstractEventLoop | None = None

    async def _at_home(self, operation: Callable[..., Coroutine[object, None, None]], *args: object) -> None:
        home = self._home
        here = asyncio.get_running_loop()
        if home is None or home is here or home.is_closed() or not home.is_running():
            await operation(*args)
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(operation(*args), home))

    async def receive(self, channel: str) -> dict[str, object]:
        self._home = asyncio.get_running_loop()
        message: dict[str, object] = await super().receive(channel)
        return message

    async def send(self, channel: str, message: dict[str, object]) -> None:
        await self._at_home(super().send, channel, message)

    async def has_members(self, group: str) -> bool:
        return bool(self.groups.get(group))

    async def group_send(self, group: str, message: dict[str, object]) -> None:
        if not self.groups.get(group):
            return  # nobody watches this group: skip the layer's sweep of every channel
        await self._at_home(super().group_send, group, message)

    async def group_add(self, group: str, channel: str) -> None:
        await self._at_home(super().group_add, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._at_home(super().group_discard, group, channel)


LAYER_UNAVAILABLE = "layer.unavailable"


class RedisChannelLayer(BaseRedisChannelLayer):  # type: ignore[misc]  # channels_redis ships no types
    """channels_redis, plus one cheap question: does anyone watch this group? (A send to an empty
    group still costs two round trips; a turn asks once in a while instead of per event.) A receive
    that fails because Redis is gone hands the consumer a ``layer.unavailable`` message instead of
    crashing it, so that a WebSocket can close with 1013 (try again later)."""

    async def receive(self, channel: str) -> dict[str, object]:
        try:
            message: dict[str, object] = await super().receive(channel)
            return message
        except (OSError, RedisError) as exc:
            await asyncio.sleep(1)  # the consumer closes; no busy loop meanwhile
            return {"type": LAYER_UNAVAILABLE, "error": repr(exc)}

    async def has_members(self, group: str) -> bool:
        connection = self.connection(self.consistent_hash(group))
        return bool(await connection.zcard(self._group_key(group)))

"""One model call of a turn: the events it yields, what it produced so far (billed if it is cut
short), and the call a failure interrupts. ``chat.fallbacks`` makes the attempts, ``chat.pipeline``
the rounds."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from chat.providers import get_provider
from chat.providers.base import (
    Finish,
    ProviderError,
    ProviderRequest,
    TextDelta,
    ToolCall,
    Usage,
    request_tokens_estimate,
    tokens_estimate,
)
from core import tracing
from core.errors import DomainError
from core.json_types import JSONObject

NO_ID = 0  # the id of an event that is not one of the turn's own (an error that ends a follower's stream)


@dataclass(frozen=True, slots=True)
class TurnEvent:
    name: str
    data: JSONObject  # the event's JSON, as a client receives it (camelCase keys)
    error: DomainError | None = None  # an ``error`` event's error: its status and headers, for a transport
    id: int = NO_ID  # its SSE id within the turn (1, 2, 3, …), given by ``chat.replay.TurnLog``; NO_ID: none


class CallState:
    """What one model call (one attempt, on ``request.model``) produced so far."""

    __slots__ = ("answered_by", "calls", "finish", "request", "text", "usage")

    def __init__(self, request: ProviderRequest) -> None:
        self.request = request
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.finish = "stop"
        self.answered_by = ""  # the model that answered, as the provider named it

    @property
    def model(self) -> str:
        return self.request.model

    @property
    def output(self) -> bool:
        """Whether the call's output has started (text or a tool call): it is no longer retried."""
        return bool(self.text or self.calls)

    @property
    def produced(self) -> bool:
        return bool(self.text or self.calls or self.usage)

    def usage_or_estimate(self) -> Usage:
        """The provider's reported usage, else the likely count of the input and of the output so
        far (never the hold's upper bound: a call is billed what it most likely cost)."""
        if self.usage is not None:
            return self.usage
        produced = "".join(self.text) + "".join(json.dumps(c.arguments) for c in self.calls)
        return Usage(request_tokens_estimate(self.request), tokens_estimate(produced))


class InFlight:
    """The call a failure interrupts: what it produced is billed, and so is a call we cut off while
    the provider had it (its prompt is billed by the provider from the moment it was sent); a call
    that failed with nothing produced is released."""

    __slots__ = ("next_hold", "state", "streaming")

    def __init__(self) -> None:
        self.state: CallState | None = None
        self.streaming = False  # sent to the provider, its text not in the totals yet
        self.next_hold: uuid.UUID | None = None  # a hold being taken for the next call or attempt

    def produced(self, *, cut_off: bool = False) -> Usage | None:
        """What the interrupted call is billed: its usage or estimate if it produced anything, or if
        we cut it off (``cut_off``: the listener left) while it was with the provider; else None."""
        state = self.state
        if state is None or not (state.produced or (cut_off and self.streaming)):
            return None
        return state.usage_or_estimate()


def stream_call(*, provider: str, state: CallState) -> AsyncGenerator[TurnEvent]:
    """One provider stream (closing it stops the provider call); ``state`` records what it produced.
    While tracing is on, in a model call's span (``core.tracing``: no content on it)."""
    events = _stream(provider, state)
    return _traced(provider, state, events) if tracing.ENABLED else events


async def _stream(provider: str, state: CallState) -> AsyncGenerator[TurnEvent]:
    async with aclosing(get_provider(provider).stream(state.request)) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                state.text.append(event.text)
                yield TurnEvent("delta", {"text": event.text})
            elif isinstance(event, ToolCall):
                state.calls.append(event)
            elif isinstance(event, Usage):
                state.usage = event
            elif isinstance(event, Finish):
                state.finish, state.answered_by = event.reason, event.model


async def _traced(provider: str, state: CallState, events: AsyncGenerator[TurnEvent]) -> AsyncGenerator[TurnEvent]:
    request = state.request
    span = tracing.start_model_call(provider=provider, model=request.model, max_tokens=request.max_output_tokens)
    error = None
    try:
        async with aclosing(events):
            async for event in events:
                yield event
    except ProviderError as exc:
        error = exc.reason
        raise
    except (GeneratorExit, asyncio.CancelledError):  # cut off: the listener left, the turn was stopped
        error = "cancelled"
        raise
    except BaseException as exc:
        error = type(exc).__name__
        raise
    finally:
        usage = state.usage
        tracing.end_model_call(
            span,
            response_model=state.answered_by or request.model,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            finish=None if error else state.finish,
            error=error,
        )

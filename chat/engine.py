"""The one turn engine. Every way a specialist works (SSE, WebSocket, async job, task run)
runs ``run_turn`` and only adapts its events; the wizard uses ``complete`` for one call.

A turn: the first hold was taken by ``services.start_turn``; then stream the provider,
run tool calls through MCP and feed results back (bounded rounds, a new hold for each
model call), settle every call to the provider's reported usage, persist the message,
and publish every event to the session's channel-layer group (WebSocket watchers).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from billing import services as billing
from billing.errors import BillingRefusal
from chat import services
from chat.providers import get_provider
from chat.providers.base import (
    ChatMessage,
    Finish,
    ProviderError,
    ProviderRequest,
    TextDelta,
    ToolCall,
    Usage,
    estimate_request_tokens,
    estimate_tokens,
)
from chat.services import PreparedTurn
from chat.tools import ToolContext, execute_tool
from leancore.api.errors import DomainError, as_domain_error
from leancore.credits import credit_str

logger = logging.getLogger(__name__)

MAX_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class TurnEvent:
    name: str
    data: dict[str, Any]


@dataclass(slots=True)
class _Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    credits: Decimal = Decimal(0)
    balance: Decimal | None = None
    calls: int = 0
    text: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def add(self, usage: Usage, charge: Any) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.credits += charge.credits
        self.balance = charge.balance
        self.calls += 1


class _CallState:
    """What one model call produced so far (to bill a call cut short for what it produced)."""

    def __init__(self, request: ProviderRequest) -> None:
        self.request = request
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.finish = "stop"

    @property
    def produced(self) -> bool:
        return bool(self.text or self.calls or self.usage)

    def usage_or_estimate(self) -> Usage:
        if self.usage is not None:
            return self.usage
        produced = "".join(self.text) + "".join(str(c.arguments) for c in self.calls)
        return Usage(estimate_request_tokens(self.request), estimate_tokens(produced))


WATCHERS_RECHECK_SECONDS = 0.5


class _Publisher:
    """Publishes a turn's events to the session's group, for WebSocket watchers. Whether anyone
    watches is asked when the turn starts and again every WATCHERS_RECHECK_SECONDS (a socket that
    connects mid-turn sees the events from then on), not for every event."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.layer = get_channel_layer()
        self.asked_at = -math.inf
        self.watched = True

    async def publish(self, event: TurnEvent) -> None:
        if self.layer is None:
            return
        try:
            if time.monotonic() - self.asked_at >= WATCHERS_RECHECK_SECONDS:
                has_members = getattr(self.layer, "has_members", None)
                self.watched = True if has_members is None else await has_members(self.group)
                self.asked_at = time.monotonic()
            if self.watched:
                await self.layer.group_send(self.group, {"type": "chat.event", "event": event.name, "data": event.data})
        except Exception:  # a watcher channel must never break the turn
            logger.exception("Could not publish %s to %s", event.name, self.group)


_settle = database_sync_to_async(billing.settle)
_reserve = database_sync_to_async(services.reserve_call)
_release = database_sync_to_async(billing.release)
_finish = database_sync_to_async(services.finish_message)
_finish_turn = database_sync_to_async(services.finish_turn)


async def _settle_call(turn: PreparedTurn, state: _CallState, totals: _Totals) -> None:
    usage = state.usage_or_estimate()
    charge = await _settle(
        reservation_id=turn.reservation_id, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens
    )
    totals.add(usage, charge)


def _usage_event(totals: _Totals) -> TurnEvent:
    return TurnEvent(
        "usage",
        {
            "inputTokens": totals.input_tokens,
            "outputTokens": totals.output_tokens,
            "credits": credit_str(totals.credits),
            "balance": credit_str(totals.balance) if totals.balance is not None else None,
        },
    )


async def _model_call(turn: PreparedTurn, state: _CallState) -> AsyncIterator[TurnEvent]:
    provider = get_provider(turn.provider)
    async with aclosing(provider.stream(state.request)) as stream:  # closing it stops the provider call
        async for event in stream:
            if isinstance(event, TextDelta):
                state.text.append(event.text)
                yield TurnEvent("delta", {"text": event.text})
            elif isinstance(event, ToolCall):
                state.calls.append(event)
            elif isinstance(event, Usage):
                state.usage = event
            elif isinstance(event, Finish):
                state.finish = event.reason


async def _run_tools(turn: PreparedTurn, state: _CallState, totals: _Totals) -> AsyncIterator[TurnEvent]:
    request = turn.request
    request.messages.append(ChatMessage(role="assistant", content="".join(state.text), tool_calls=state.calls))
    for call in state.calls:
        binding = turn.bindings.get(call.name)
        remote_name = binding.remote_name if binding else call.name
        connection_id = binding.connection_id if binding else None
        yield TurnEvent(
            "tool_call",
            {"id": call.id, "name": remote_name, "arguments": call.arguments, "connectionId": connection_id},
        )
        outcome = await execute_tool(
            binding=binding,
            arguments=call.arguments,
            context=ToolContext(turn.workspace_id, turn.session_id, turn.specialist_id),
        )
        totals.tool_calls.append(
            {
                "id": call.id,
                "name": remote_name,
                "connectionId": connection_id,
                "arguments": call.arguments,
                "result": outcome.result,
                "isError": outcome.is_error,
                "durationMs": outcome.duration_ms,
            }
        )
        yield TurnEvent(
            "tool_result",
            {"id": call.id, "result": outcome.result, "isError": outcome.is_error, "durationMs": outcome.duration_ms},
        )
        request.messages.append(
            ChatMessage(role="tool", content=outcome.result, tool_call_id=call.id, is_error=outcome.is_error)
        )


async def _turn_events(turn: PreparedTurn, totals: _Totals) -> AsyncIterator[TurnEvent]:
    yield TurnEvent(
        "session",
        {
            "sessionId": str(turn.session_id),
            "userMessageId": str(turn.user_message_id),
            "messageId": str(turn.message_id),
        },
    )
    finish = "stop"
    for round_number in range(1, MAX_ROUNDS + 1):
        state = _CallState(turn.request)
        try:
            async with aclosing(_model_call(turn, state)) as events:
                async for event in events:
                    yield event
        except BaseException:
            # provider failure or the client went away: bill what was produced (nothing produced,
            # nothing billed: the hold is released), then re-raise
            totals.text.extend(state.text)
            if state.produced:
                await asyncio.shield(_settle_call(turn, state, totals))
            raise
        totals.text.extend(state.text)
        finish = state.finish
        if state.calls and round_number < MAX_ROUNDS:
            await _settle_call(turn, state, totals)
            async for event in _run_tools(turn, state, totals):
                yield event
            turn.reservation_id = await _reserve(turn)  # the next model call's own hold (may refuse: 402)
            continue
        if state.calls:
            finish = "max_rounds"
        # the last call: settle it and complete the message in one transaction
        usage = state.usage_or_estimate()
        try:
            charge = await _finish_turn(
                reservation_id=turn.reservation_id,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                message_id=turn.message_id,
                content="".join(totals.text),
                tool_calls=totals.tool_calls,
                prior_input_tokens=totals.input_tokens,
                prior_output_tokens=totals.output_tokens,
                prior_credits=totals.credits,
                finish_reason=finish,
            )
        except BaseException:
            # the answer could not be recorded (e.g. the database is briefly unavailable): the call
            # was made, so it is still billed on its own if at all possible; then the turn fails
            try:
                await asyncio.shield(_settle_call(turn, state, totals))
            except Exception:
                logger.exception("Could not settle the last call of turn %s", turn.message_id)
            raise
        totals.add(usage, charge)
        break
    yield _usage_event(totals)
    yield TurnEvent("done", {"messageId": str(turn.message_id), "finishReason": finish})


def _error_of(exc: BaseException) -> tuple[str, str]:
    error = as_domain_error(exc) if isinstance(exc, Exception) else None  # a database outage: service_unavailable
    if error is not None:
        return error.code, error.detail
    return "llm_unavailable", "The turn failed unexpectedly."


async def run_turn(turn: PreparedTurn) -> AsyncIterator[TurnEvent]:
    """Yields the turn's events (and publishes each to the session group). A failure after the
    start ends with ``usage`` (if anything was billed) and ``error``; the message is then failed."""
    totals = _Totals()
    publisher = _Publisher(turn.group)
    try:
        async with aclosing(_turn_events(turn, totals)) as events:
            async for event in events:
                await publisher.publish(event)
                yield event
    except (asyncio.CancelledError, GeneratorExit):
        await asyncio.shield(
            _abandon(turn, totals, "client_disconnected", "The client went away; the turn was stopped.")
        )
        raise
    except Exception as exc:
        if not isinstance(exc, (DomainError, ProviderError, BillingRefusal)):
            logger.exception("Turn %s failed", turn.message_id)
        code, detail = _error_of(exc)
        try:
            await _abandon(turn, totals, code, detail)
        except Exception:  # the stream still ends with its error; maintenance fails the message later
            logger.exception("Could not record the failure of turn %s", turn.message_id)
        events = [_usage_event(totals)] if totals.calls else []
        events.append(TurnEvent("error", {"code": code, "detail": detail}))
        for event in events:
            await publisher.publish(event)
            yield event


async def _abandon(turn: PreparedTurn, totals: _Totals, code: str, detail: str) -> None:
    await _release(reservation_id=turn.reservation_id)  # a hold whose call never ran (no-op if settled)
    await _finish(
        message_id=turn.message_id,
        content="".join(totals.text),
        tool_calls=totals.tool_calls,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        credits=totals.credits,
        error_code=code,
        error=detail,
    )


async def drain(turn: PreparedTurn) -> str:
    """Runs a turn to its end with no listener of its own (async jobs, task runs). Returns the last event."""
    last = ""
    async with aclosing(run_turn(turn)) as events:
        async for event in events:
            last = event.name
    return last


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    credits: Decimal


async def _collect(provider_name: str, state: _CallState) -> None:
    """Streams one call into ``state`` (which keeps what was produced if the call fails midway)."""
    async with aclosing(get_provider(provider_name).stream(state.request)) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                state.text.append(event.text)
            elif isinstance(event, Usage):
                state.usage = event
            elif isinstance(event, Finish):
                state.finish = event.reason


def complete(*, org: Any, provider: str, request: ProviderRequest, user_id: Any, description: str) -> Completion:
    """One metered model call outside a chat session (the specialist wizard): reserve the worst
    case (402 before anything reaches the model), call, settle to the reported usage."""
    from asgiref.sync import async_to_sync

    hold = billing.reserve(
        org=org,
        model=request.model,
        input_tokens=estimate_request_tokens(request),
        max_output_tokens=request.max_output_tokens,
        user_id=user_id,
    )
    state = _CallState(request)

    def settle() -> Decimal:
        usage = state.usage_or_estimate()
        return billing.settle(
            reservation_id=hold.reservation_id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            description=description,
        ).credits

    try:
        async_to_sync(_collect)(provider, state)
    except BaseException:
        # a call cut short is billed for what it produced; one that produced nothing costs nothing
        if state.produced:
            settle()
        else:
            billing.release(reservation_id=hold.reservation_id)
        raise
    credits = settle()
    usage = state.usage_or_estimate()
    return Completion("".join(state.text), usage.input_tokens, usage.output_tokens, credits)

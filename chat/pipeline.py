"""The one turn pipeline. Every way a specialist works (the SSE stream, the async job, the
WebSocket, a task run, the wizard) prepares its turn with ``chat.turns`` (one transaction: the
session, both messages and the first hold), then runs it here and only adapts the events:

- *call*: stream the provider on the event loop (each call through ``chat.fallbacks``: retried,
  then fallen back, before its first output), run tool calls through MCP and feed the results
  back (bounded rounds; between rounds one transaction settles the call and holds the next);
- *record*: one transaction settles the last call, writes the ledger and completes the message,
  or, when the turn fails, bills what was produced and fails the message with the reason (when the
  database is away, the stream ends at once with `service_unavailable` and that record is written
  by a thread of its own once the database answers again).

Each database phase is one hop to a thread; nothing on the event loop waits on sync code while
tokens flow. Events are numbered, kept for replay and published to the session's channel-layer group
for WebSocket watchers in one place (``chat.replay.TurnLog``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, replace
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.conf import settings

from billing.errors import BillingRefusal
from chat import metering, records, turns
from chat.calls import CallState, InFlight, TurnEvent
from chat.errors import ClientDisconnectedError
from chat.fallbacks import call_model
from chat.providers.base import ChatMessage, ProviderError, ProviderRequest, Usage
from chat.replay import TurnLog
from chat.tools import ToolContext, execute_tool
from chat.turns import PreparedTurn, Totals
from core import log_context
from core.credits import credit_str
from core.db import in_thread
from core.errors import DomainError, as_domain_error
from orgs.context import OrgContext

logger = logging.getLogger(__name__)

MAX_ROUNDS = 8


_settle_and_hold_next = in_thread(records.settle_and_hold_next)
_beat = in_thread(turns.beat)
_bill_and_complete_message = in_thread(records.bill_and_complete_message)
_bill_and_fail_message = in_thread(records.bill_and_fail_message)
_settle_alone = in_thread(metering.settle)


def _usage_event(totals: Totals) -> TurnEvent:
    return TurnEvent(
        "usage",
        {
            "inputTokens": totals.input_tokens,
            "outputTokens": totals.output_tokens,
            "credits": credit_str(totals.credits),
            "balance": credit_str(totals.balance) if totals.balance is not None else None,
            "model": totals.model or None,  # the model of the last call that answered
        },
    )


async def _run_tools(turn: PreparedTurn, state: CallState, totals: Totals) -> AsyncGenerator[TurnEvent]:
    request = turn.request
    request.messages.append(ChatMessage(role="assistant", content="".join(state.text), tool_calls=state.calls))
    for call in state.calls:
        binding = turn.bindings.get(call.name)
        remote_name = binding.remote_name if binding else call.name
        connection_id = str(binding.connection_id) if binding and binding.connection_id else None  # JSON
        yield TurnEvent(
            "tool_call",
            {"id": call.id, "name": remote_name, "arguments": call.arguments, "connectionId": connection_id},
        )
        outcome = await execute_tool(
            binding=binding,
            arguments=call.arguments,
            context=ToolContext(turn.org.pk, turn.workspace_id, turn.session_id, turn.specialist_id),
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


async def _phases(turn: PreparedTurn, totals: Totals, in_flight: InFlight) -> AsyncGenerator[TurnEvent]:
    if turn.session_id is not None:
        yield TurnEvent(
            "session",
            {
                "sessionId": str(turn.session_id),
                "userMessageId": str(turn.user_message_id),
                "messageId": str(turn.message_id),
            },
        )
    for round_number in range(1, MAX_ROUNDS + 1):
        async with aclosing(
            call_model(turn=turn, totals=totals, in_flight=in_flight)
        ) as events:  # retries and fallbacks
            async for event in events:
                turn.meter.seen(event.name)  # its first token, for the metrics
                yield event
        state = in_flight.state
        assert state is not None  # the attempt that answered
        totals.text.extend(state.text)
        totals.model = state.model
        finish = state.finish
        if state.calls and round_number < MAX_ROUNDS:
            state.usage = state.usage_or_estimate()  # frozen before the tool results join the request
            async for event in _run_tools(turn, state, totals):
                yield event
            # settle this call and hold the next (its input now includes the tool results)
            in_flight.next_hold = next_hold = uuid.uuid4()
            charge, refusal = await _settle_and_hold_next(turn=turn, usage=state.usage, next_hold=next_hold)
            in_flight.state = in_flight.next_hold = None
            totals.add(state.usage, charge)
            if refusal is not None:  # the next call would overdraw: 402, nothing more is called
                raise refusal
            turn.reservation_id = next_hold
            continue
        if state.calls:
            finish = "max_rounds"
        usage = state.usage_or_estimate()
        charge = await _bill_and_complete_message(turn=turn, totals=totals, usage=usage, finish_reason=finish)
        in_flight.state = None
        totals.add(usage, charge)
        yield _usage_event(totals)
        yield TurnEvent("done", {"messageId": str(turn.message_id), "finishReason": finish})
        return


def _error_of(exc: BaseException) -> DomainError:
    error = as_domain_error(exc) if isinstance(exc, Exception) else None  # a database outage: service_unavailable
    return error if error is not None else ProviderError("The turn failed unexpectedly.")


async def _fail(
    turn: PreparedTurn,
    totals: Totals,
    in_flight: InFlight,
    code: str,
    detail: str,
    *,
    cut_off: bool = False,
    database_away: bool = False,
) -> None:
    """Records the failure: bills what the call in flight produced, closes the turn's holds, fails the
    message. When the database is away (``database_away``: that is why the turn failed; or it turns
    out to be when the failure is written), the turn ends at once and its failure is written in a
    thread of its own once the database answers again (``records.bill_and_fail_message_when_back``)."""
    produced = in_flight.produced(cut_off=cut_off)
    if produced is not None and in_flight.state is not None:  # the model of the call billed last
        totals.model = in_flight.state.model
    if in_flight.streaming and in_flight.state is not None:  # a call cut short: its text so far
        totals.text.extend(in_flight.state.text)
        in_flight.streaming = False
    if not database_away:
        try:
            charge = await _bill_and_fail_message(
                turn=turn, totals=totals, produced=produced, code=code, detail=detail, next_hold=in_flight.next_hold
            )
        except Exception as exc:
            if not records.database_away(exc=exc):
                if produced is not None:  # the message cannot be written: the call is still billed on its own
                    await _settle_alone(
                        reservation_id=turn.reservation_id, usage=produced, description=turn.description
                    )
                raise
        else:
            if produced is not None and charge is not None:
                totals.add(produced, charge)
            return
    _bill_and_fail_message_when_back(turn, totals, produced, code, detail, next_hold=in_flight.next_hold)


def _bill_and_fail_message_when_back(
    turn: PreparedTurn, totals: Totals, produced: Usage | None, code: str, detail: str, *, next_hold: uuid.UUID | None
) -> None:
    """The turn's failure, written by a thread of its own once the database is back (it outlives
    this event loop: a worker's job ends, the loop with it, before the database answers)."""
    kept = replace(totals, text=list(totals.text), tool_calls=list(totals.tool_calls))
    threading.Thread(
        target=records.bill_and_fail_message_when_back,
        kwargs={
            "turn": turn,
            "totals": kept,
            "produced": produced,
            "code": code,
            "detail": detail,
            "next_hold": next_hold,
        },
        name=f"record-failure-{turn.message_id}",
        daemon=True,
    ).start()


async def _keep_alive(message_id: uuid.UUID, log: TurnLog | None) -> None:
    """Renews the turn's lease, and its replay log's expiry, every TURN_HEARTBEAT_SECONDS while it
    runs (a turn shorter than that costs nothing more): maintenance fails a turn whose lease ran
    out, as its process died."""
    while True:
        await asyncio.sleep(settings.TURN_HEARTBEAT_SECONDS)
        try:
            await _beat(message_id=message_id)
        except Exception as exc:  # the database is briefly away: the next beat will tell
            logger.warning("Turn %s: heartbeat not written: %r", message_id, exc)
        if log is not None:
            await log.keep()


async def _recorded(turn: PreparedTurn, totals: Totals, log: TurnLog | None = None) -> AsyncGenerator[TurnEvent]:
    """The turn's events; a failure (or the listener going away) is recorded before it propagates:
    what the call in flight produced is billed once, the message fails with the reason."""
    log_context.bind(org_id=turn.org.pk, user_id=turn.payer.user_id, message_id=turn.message_id)  # the turn's lines
    in_flight = InFlight()
    keeper = asyncio.create_task(_keep_alive(turn.message_id, log)) if turn.message_id is not None else None
    try:
        async with aclosing(_phases(turn, totals, in_flight)) as events:
            async for event in events:
                yield event
    except (asyncio.CancelledError, GeneratorExit):
        gone = ClientDisconnectedError()
        await asyncio.shield(_fail(turn, totals, in_flight, gone.code, gone.detail, cut_off=True))
        raise
    except Exception as exc:
        if not isinstance(exc, (DomainError, ProviderError, BillingRefusal)):
            logger.exception("Turn %s failed", turn.message_id)
        error = _error_of(exc)
        away = records.database_away(exc=exc)  # the turn's failure is written once it is back
        try:
            await asyncio.shield(_fail(turn, totals, in_flight, error.code, error.detail, database_away=away))
        except Exception:  # the turn still ends with its error; maintenance fails the message later
            logger.exception("Could not record the failure of turn %s", turn.message_id)
        raise
    finally:
        if keeper is not None:
            keeper.cancel()


async def run_turn(*, turn: PreparedTurn) -> AsyncGenerator[TurnEvent]:
    """Yields the turn's events, each with its id (``chat.replay.TurnLog``: kept for replay and
    published to the session group). A failure after the start ends with ``usage`` (if anything was
    billed) and ``error``; the message is then failed."""
    totals = Totals()
    log = TurnLog(message_id=turn.message_id, group=turn.group)
    try:
        async with aclosing(_recorded(turn, totals, log)) as events:
            async for event in events:
                yield log.record(event)
    except (asyncio.CancelledError, GeneratorExit):  # the listener left: its log still ends with the error
        if not log.ended:
            for event in _last_events(totals, ClientDisconnectedError()):
                log.record(event)
        raise
    except Exception as exc:
        for event in _last_events(totals, _error_of(exc)):
            yield log.record(event)
    finally:
        await log.flush()


def _last_events(totals: Totals, error: DomainError) -> list[TurnEvent]:
    last = [_usage_event(totals)] if totals.calls else []
    last.append(TurnEvent("error", {"code": error.code, "detail": error.detail}, error))
    return last


async def drain(*, turn: PreparedTurn) -> str:
    """Runs a turn to its end with no listener of its own (async jobs, task runs). Returns the last event."""
    last = ""
    async with aclosing(run_turn(turn=turn)) as events:
        async for event in events:
            last = event.name
    return last


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    credits: Decimal


async def _complete(turn: PreparedTurn) -> Completion:
    totals = Totals()
    async with aclosing(_recorded(turn, totals)) as events:
        async for _ in events:
            pass
    return Completion("".join(totals.text), totals.input_tokens, totals.output_tokens, totals.credits)


def complete(*, context: OrgContext, provider: str, request: ProviderRequest, description: str) -> Completion:
    """One metered model call outside a chat session (the specialist wizard), through the same
    phases as a chat turn: prepare (the hold, 402 before anything reaches the model), call, record
    (settled to the reported usage; a call cut short is billed for what it produced). Errors raise."""
    turn = turns.start_completion(context=context, provider=provider, request=request, description=description)
    return async_to_sync(_complete)(turn)

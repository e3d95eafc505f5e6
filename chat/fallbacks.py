"""Retries and fallbacks (API.md §6): the one policy for a model call that fails before its first
output. The providers never retry (their SDKs' own retries are off): every attempt is made here, so
that each is held and billed.

A call is made on the specialist's model. One that fails before any output (no connection, no first
byte within LLM_FIRST_BYTE_TIMEOUT, nothing for LLM_IDLE_TIMEOUT, or a provider status in
RETRY_STATUSES) is tried once more on the same model after a short pause (BACKOFF_SECONDS, or the
provider's Retry-After up to MAX_RETRY_AFTER_SECONDS; a longer one skips the retry), then on each
fallback model in order, each with the same one retry; a ``fallback`` event tells each switch. Every
other failure, or one after the output started, ends the call. Each attempt holds and settles on its
own at its model's rate as frozen when the turn was accepted: between two attempts one transaction
bills the failed one its reported usage (with none it costs nothing: its hold is given back) and
holds the next, whose refusal (402) ends the chain. A fallback model's output limit is the smaller of
the specialist's and its own. Every call of a turn (each tool round) starts again at the specialist's
model; the wizard's call has no fallbacks but the same one retry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

from django.db import transaction

from billing.errors import BillingRefusal
from billing.models import ModelRate
from chat import metering
from chat.calls import CallState, InFlight, TurnEvent, stream_call
from chat.providers.base import CONNECTION_ERROR, HTTP, TIMEOUT, ProviderError, ProviderRequest, Usage
from core import metrics
from core.db import in_thread

if TYPE_CHECKING:
    from chat.turns import PreparedTurn, Totals

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
ATTEMPTS_PER_MODEL = 2  # the first and one retry
BACKOFF_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 5.0


def fallback_rates(*, models: list[str]) -> list[ModelRate]:
    """The rates of a specialist's fallback models, in its order, as a turn freezes them when it is
    accepted (one query; none without fallbacks). A model no longer active is left out."""
    if not models:
        return []
    found = {rate.model: rate for rate in ModelRate.objects.filter(model__in=models, active=True)}
    return [found[model] for model in models if model in found]


@dataclass(frozen=True, slots=True)
class Link:
    """One model of a call's chain: its provider, its frozen rate (None: the model's active rate,
    the wizard's) and the request made to it."""

    provider: str
    rate: ModelRate | None
    request: ProviderRequest

    @property
    def model(self) -> str:
        return self.request.model


def chain_of(*, turn: PreparedTurn) -> list[Link]:
    """The specialist's model, then each fallback model with its own output limit."""
    links = [Link(turn.provider, turn.rate, turn.request)]
    for rate in turn.fallbacks:
        limit = min(turn.request.max_output_tokens, rate.max_output_tokens)
        links.append(Link(rate.provider, rate, replace(turn.request, model=rate.model, max_output_tokens=limit)))
    return links


def retry_reason(*, error: ProviderError) -> str | None:
    """Why a call that failed before its first output is tried again (``timeout``,
    ``connection_error``, ``http_<status>``), or None: it is not."""
    if error.kind in (TIMEOUT, CONNECTION_ERROR) or (error.kind == HTTP and error.http_status in RETRY_STATUSES):
        return error.reason
    return None


def retry_pause(*, error: ProviderError) -> float | None:
    """Seconds to wait before the retry on the same model, or None: a provider that asks for more
    than MAX_RETRY_AFTER_SECONDS is not retried (its fallbacks are tried at once)."""
    if error.retry_after is None:
        return BACKOFF_SECONDS
    return error.retry_after if error.retry_after <= MAX_RETRY_AFTER_SECONDS else None


def chain_failure(*, error: ProviderError, tried: list[tuple[str, list[str]]]) -> ProviderError:
    """The call's failure (502 ``llm_unavailable``), naming every model tried and how each failed."""
    models = ", ".join(f"{model} ({', '.join(reasons)})" for model, reasons in tried)
    return ProviderError(
        f"The model call failed before any output; models tried: {models}. Last failure: {error.detail}",
        kind=error.kind,
        http_status=error.http_status,
        retry_after=error.retry_after,
    )


class NextAttempt(NamedTuple):
    """What passing to the next attempt did: the failed attempt's charge (None: its hold was given
    back) and the refusal of the next attempt's hold (None: it is held)."""

    charge: metering.Charge | None
    refusal: BillingRefusal | None


def next_attempt(*, turn: PreparedTurn, failed: Usage | None, next_hold: uuid.UUID, link: Link) -> NextAttempt:
    """Between two attempts, one transaction: the failed attempt (``turn.reservation_id``) is billed
    the usage its provider reported (``failed``), or its hold is given back (it cost nothing); the
    next attempt is held (as ``next_hold``) at its model's rate. A refusal of that hold (402) is
    returned, not raised: what was settled stands."""
    charge = refusal = None
    with transaction.atomic(savepoint=False):
        if failed is None:
            metering.release(reservation_id=turn.reservation_id)
        else:
            charge = metering.settle(reservation_id=turn.reservation_id, usage=failed, description=turn.description)
        try:  # a refusal writes nothing and leaves the transaction usable
            metering.hold(payer=turn.payer, request=link.request, rate=link.rate, reservation_id=next_hold)
        except BillingRefusal as exc:
            refusal = exc
    return NextAttempt(charge, refusal)


_next_attempt = in_thread(next_attempt)


async def pause(*, seconds: float) -> None:
    await asyncio.sleep(seconds)


async def _switch(turn: PreparedTurn, totals: Totals, in_flight: InFlight, link: Link) -> None:
    """The failed attempt is settled or released and ``link``'s attempt held (a refusal raises)."""
    failed = in_flight.state.usage if in_flight.state is not None else None
    in_flight.next_hold = next_hold = uuid.uuid4()
    charge, refusal = await _next_attempt(turn=turn, failed=failed, next_hold=next_hold, link=link)
    in_flight.state = in_flight.next_hold = None
    if failed is not None and charge is not None:
        totals.add(failed, charge)
    if refusal is not None:  # the next attempt would overdraw: 402, nothing more is called
        raise refusal
    turn.reservation_id = next_hold


async def call_model(*, turn: PreparedTurn, totals: Totals, in_flight: InFlight) -> AsyncGenerator[TurnEvent]:
    """One model call of the turn through its chain: yields a ``fallback`` event for each switch to
    the next model, then the answering attempt's events. Afterwards ``in_flight.state`` is the
    attempt that answered and ``turn.reservation_id`` its hold. Raises the failure that ends the
    chain (naming every model tried), or the provider's failure after the output started."""
    links = chain_of(turn=turn)
    tried: list[tuple[str, list[str]]] = []
    for index, link in enumerate(links):
        reasons: list[str] = []
        tried.append((link.model, reasons))
        for attempt in range(1, ATTEMPTS_PER_MODEL + 1):
            state = in_flight.state = CallState(link.request)
            in_flight.streaming = True
            try:
                async with aclosing(stream_call(provider=link.provider, state=state)) as events:
                    async for event in events:
                        yield event
            except ProviderError as error:
                if state.output:
                    raise  # after the output started: not retried
                in_flight.streaming = False
                reasons.append(error.reason)
                reason = retry_reason(error=error)
                if reason is None:
                    raise chain_failure(error=error, tried=tried) from error
                wait = retry_pause(error=error) if attempt < ATTEMPTS_PER_MODEL else None
                if wait is not None:
                    await _switch(turn, totals, in_flight, link)
                    await pause(seconds=wait)
                    continue
                if index + 1 == len(links):
                    raise chain_failure(error=error, tried=tried) from error
                following = links[index + 1]
                await _switch(turn, totals, in_flight, following)
                metrics.record_fallback(link.model, following.model)
                yield TurnEvent("fallback", {"fromModel": link.model, "toModel": following.model, "reason": reason})
                break
            in_flight.streaming = False
            return

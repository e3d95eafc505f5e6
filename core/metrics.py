"""Prometheus metrics: every family of the contract (API.md §7) and the one typed helper that records
each; callers call the helpers, never the metric objects.

Every process records, whether or not it serves ``/metrics``. Under ``manage.py serve`` each child
writes to prometheus-client's multi-process directory (``PROMETHEUS_MULTIPROC_DIR``, set by serve
before the children start) and a scrape adds every process up (``core.metrics_export``); elsewhere
(a plain ``runserver``, the tests) the process's own registry is scraped. No label carries an org,
user, key or session id: labels are bounded sets (a method, a URL pattern, a status, a model).

Recording is cheap: a labelled child is looked up once and kept (``_child``), and a turn's clock
(``TurnMeter``) is two floats."""

from __future__ import annotations

import time
from decimal import Decimal
from types import TracebackType
from typing import Final, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

from core.errors import ERROR_CODES

# no ``_created`` series: the same families single- and multi-process
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated

# The metric objects register here, never with prometheus-client's global registry (which would add
# the process's own collectors): a single-process scrape reads this one (core.metrics_export).
REGISTRY: Final = CollectorRegistry(auto_describe=True)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"  # any other method a client sends: one value, not one series per invention
UNMATCHED_ROUTE = "unmatched"  # no URL pattern served it (an unknown path, or answered before routing)

HTTP_REQUESTS = Counter(
    "leancore_http_requests_total",
    "HTTP requests answered, by method, URL pattern and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "leancore_http_request_duration_seconds",
    "Time to answer an HTTP request (a streamed answer: until its last byte), by method and URL pattern.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
TURNS = Counter(
    "leancore_turns_total",
    "Turns by provider, model and outcome (completed, failed, refused).",
    ["provider", "model", "outcome"],
    registry=REGISTRY,
)
TURN_FIRST_TOKEN = Histogram(
    "leancore_turn_first_token_seconds",
    "From a turn's start (a queued turn: its pick-up) to its first text token.",
    ["provider", "model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)
TURN_DURATION = Histogram(
    "leancore_turn_duration_seconds",
    "From a turn's start (a queued turn: its pick-up) to its end, completed or failed.",
    ["provider", "model"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "leancore_llm_tokens_total",
    "Tokens billed for model calls, by provider, model and direction (input, output).",
    ["provider", "model", "direction"],
    registry=REGISTRY,
)
CREDITS_SPENT = Counter(
    "leancore_credits_spent_total",
    "Credits charged for model calls, by model (per organization: the admin and /billing/usage/summary).",
    ["model"],
    registry=REGISTRY,
)
REFUSALS = Counter(
    "leancore_refusals_total",
    "Model calls refused before they start (402), by scope.",
    ["scope"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "leancore_llm_fallbacks_total",
    "Model calls handed to a fallback model, by the model that failed and the one that took over.",
    ["from_model", "to_model"],
    registry=REGISTRY,
)
MCP_TOOL_CALLS = Counter(
    "leancore_mcp_tool_calls_total",
    "MCP tool calls made for a model, by outcome (ok, error).",
    ["outcome"],
    registry=REGISTRY,
)
DB_POOL_WAIT = Histogram(
    "leancore_db_pool_wait_seconds",
    "Time a process waited for a database connection from its pool.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
WEBSOCKET_CONNECTIONS = Gauge(
    "leancore_websocket_connections",
    "Open chat WebSockets, summed over the live processes.",
    multiprocess_mode="livesum",  # a process that died takes its sockets with it (serve marks it dead)
    registry=REGISTRY,
)
# leancore_jobs_waiting (gauge, by queue) is read from the jobs table when scraped: core.metrics_export.
JOBS_WAITING_NAME = "leancore_jobs_waiting"

_children: dict[tuple[object, ...], MetricWrapperBase] = {}


def _child[M: MetricWrapperBase](metric: M, *values: str) -> M:
    """The metric's child for these label values, made once per process (``labels()`` costs a lock
    and a few allocations on every call; the label sets are small and bounded)."""
    key = (metric, *values)
    found = _children.get(key)
    if found is None:
        child = _children[key] = metric.labels(*values)
        return child
    return cast(M, found)  # made from this metric, so of its type


# --- HTTP --------------------------------------------------------------------------------------


def route_label(route: str) -> str:
    """The URL pattern a request was served by, as one value for both spellings of a path (with and
    without its trailing slash)."""
    return route.rstrip("/") or "/"


def record_http_request(*, method: str, route: str, status: int, seconds: float) -> None:
    verb = method if method in HTTP_METHODS else OTHER_METHOD
    _child(HTTP_REQUESTS, verb, route, str(status)).inc()
    _child(HTTP_DURATION, verb, route).observe(seconds)


# --- turns -------------------------------------------------------------------------------------


class TurnMeter:
    """A turn's clock: when it started, when its first text token came, whether its end is counted."""

    __slots__ = ("ended", "first_token_at", "started_at")

    def __init__(self) -> None:
        self.started_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.ended = False

    def seen(self, event: str) -> None:
        """The turn yielded ``event``: its first ``delta`` (text token) is its first token."""
        if event == "delta" and self.first_token_at is None:
            self.first_token_at = time.perf_counter()


def outcome_of(code: str) -> str:
    """A turn that ended with error ``code``: ``refused`` for a 402 (a call it needed was refused),
    else ``failed``; no code: ``completed``."""
    if not code:
        return "completed"
    known = ERROR_CODES.get(code)
    return "refused" if known is not None and known.status == 402 else "failed"


def record_turn_end(meter: TurnMeter, *, provider: str, model: str, code: str = "") -> None:
    """A turn that ran ended: completed (no ``code``) or failed with ``code``. Counted once: a listener
    that leaves once the turn is recorded does not make it fail as well."""
    if meter.ended:
        return
    meter.ended = True
    _child(TURNS, provider, model, outcome_of(code)).inc()
    _child(TURN_DURATION, provider, model).observe(time.perf_counter() - meter.started_at)
    if meter.first_token_at is not None:
        _child(TURN_FIRST_TOKEN, provider, model).observe(meter.first_token_at - meter.started_at)


def record_turn_refused(*, provider: str, model: str) -> None:
    """A turn refused before it ran (402 at its start, or when a worker picked it up)."""
    _child(TURNS, provider, model, "refused").inc()


class refused_turns_counted:  # noqa: N801 - used as a context manager, named like one
    """``with refused_turns_counted(provider=…, model=…):`` around a turn's first hold: a 402 raised
    inside counts the turn refused (and propagates)."""

    __slots__ = ("model", "provider")

    def __init__(self, *, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is not None and getattr(error, "status", None) == 402:
            record_turn_refused(provider=self.provider, model=self.model)


# --- model calls, billing ----------------------------------------------------------------------


def record_billed_call(*, provider: str, model: str, input_tokens: int, output_tokens: int, credits: Decimal) -> None:
    """One model call billed: its tokens and the credits charged."""
    if input_tokens:
        _child(LLM_TOKENS, provider, model, "input").inc(input_tokens)
    if output_tokens:
        _child(LLM_TOKENS, provider, model, "output").inc(output_tokens)
    if credits:
        _child(CREDITS_SPENT, model).inc(float(credits))


def record_refusal(error: Exception) -> None:
    """A model call refused with the contract's 402 (an error with a ``scope``); other errors are
    not refusals and are not counted."""
    scope = getattr(error, "extra", {}).get("scope")
    if isinstance(scope, str):
        _child(REFUSALS, scope).inc()


def record_fallback(from_model: str, to_model: str) -> None:
    """A model call that failed was handed to a fallback model."""
    _child(FALLBACKS, from_model, to_model).inc()


def record_mcp_tool_call(*, ok: bool) -> None:
    _child(MCP_TOOL_CALLS, "ok" if ok else "error").inc()


# --- database, WebSockets ----------------------------------------------------------------------


def record_db_pool_wait(seconds: float) -> None:
    DB_POOL_WAIT.observe(seconds)


def websocket_opened() -> None:
    WEBSOCKET_CONNECTIONS.inc()


def websocket_closed() -> None:
    WEBSOCKET_CONNECTIONS.dec()

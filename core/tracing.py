"""OpenTelemetry traces (API.md §7): off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

``configure()`` runs once per process (the ASGI app, ``db_worker``'s pool). With the variable set it
installs the SDK's tracer provider, its spans batched (``BatchSpanProcessor``) and exported as OTLP
over HTTP/protobuf, the SDK reading every standard ``OTEL_*`` variable itself (the traces-only
endpoint, headers, timeout, compression, sampler, batch sizes, resource, propagators), and, when
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` is set without ``psycopg`` (unset, it is ``psycopg``),
instruments psycopg (a span per ORM statement); ``traced_asgi`` wraps the HTTP app in the ASGI
instrumentation (one server span per request, an incoming ``traceparent`` honoured). Unset, nothing
is installed: no provider, no instrumentation, no exporter thread; the hooks on the turn's path
test one module-level boolean (``ENABLED``) and do nothing else.

The spans written here follow the GenAI semantic conventions: one per model call (an attempt on
one model, ``chat {model}``) and one per tool call (``execute_tool {tool}``), and one per background
job, which continues the trace of the request that queued it (``job_context`` travels in the job's
arguments, ``job_span`` reads it back in the worker). No message content, tool argument or tool
result is ever put on a span, nor an error's text (it may quote them): errors are named by kind."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

ENABLED = False  # whether configure() installed tracing in this process; read as ``tracing.ENABLED``

ENDPOINT_VARIABLE: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
DISABLED_VARIABLE: Final = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
DEFAULT_DISABLED: Final = frozenset({"psycopg"})  # statement spans only when the operator asks for them
SERVICE: Final = "leancore"  # service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name one
JOB_CONTEXT_ARGUMENT: Final = "trace_context"  # the keyword argument of a job that carries its trace
# probes and scrapes are not traced unless OTEL_PYTHON_ASGI_EXCLUDED_URLS (or _EXCLUDED_URLS) says otherwise
DEFAULT_EXCLUDED_URLS: Final = r"^[a-z]+://[^/]+/(health|metrics)/?$"
WEBSOCKET_TURN: Final = "websocket message"  # the span of a turn sent over a WebSocket
LOCAL_PROVIDER: Final = "local"  # the offline model runs in the process: its calls are internal spans

_tracer: trace.Tracer = trace.NoOpTracer()


def _wanted() -> bool:
    endpoint = os.environ.get(ENDPOINT_VARIABLE, "").strip()
    return bool(endpoint) and os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def _disabled_instrumentations() -> set[str]:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` as the operator set it (``psycopg``, ``asgi``; set
    but empty: none); unset, ``psycopg``: a span per statement would be most of a turn's spans and of
    what tracing costs it, for what the request's and the model call's spans already time."""
    names = os.environ.get(DISABLED_VARIABLE)
    if names is None:
        return set(DEFAULT_DISABLED)
    return {name.strip() for name in names.split(",") if name.strip()}


def configure() -> bool:
    """Installs tracing in this process if ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (and the SDK is not
    disabled); once: later calls return what the first did."""
    global ENABLED, _tracer  # noqa: PLW0603 - set once per process, when it starts
    if ENABLED or not _wanted():
        return ENABLED
    # the SDK, the exporter and the instrumentations are loaded only when tracing is on (16 MB, 0.1 s)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: SERVICE}))
    provider = TracerProvider(resource=resource)  # its sampler from OTEL_TRACES_SAMPLER; flushed at exit
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if "psycopg" not in _disabled_instrumentations():
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor  # noqa: PLC0415

        PsycopgInstrumentor().instrument(tracer_provider=provider)  # statements' text, never their values
    _tracer = provider.get_tracer(SERVICE)
    ENABLED = True
    return True


def _request_span_details(scope: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A request's span is named by its method until the URL pattern is known (``name_request``):
    never by its path, which holds ids."""
    return str(scope.get("method") or "HTTP"), {}


def _mask_query(span: Span, scope: Mapping[str, Any]) -> None:
    """A query's values may carry a token or what a user typed (a search): the request's span shows
    each as ``***``, as the access log leaves the query out."""
    query = scope.get("query_string")
    if not query or not span.is_recording():
        return
    pieces = bytes(query).decode("latin-1").split("&")
    masked = "&".join(f"{piece.partition('=')[0]}=***" if "=" in piece else "***" for piece in pieces if piece)
    recorded: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    for key in ("http.url", "url.full"):  # the attribute of the semantic conventions in use
        if key in recorded:
            span.set_attribute(key, f"{str(recorded[key]).partition('?')[0]}?{masked}")
    if "url.query" in recorded:
        span.set_attribute("url.query", masked)


def traced_asgi(app: Any) -> Any:
    """``app`` in the ASGI instrumentation's middleware (one server span per request, covering a
    streamed answer to its last byte; no span per chunk sent), or ``app`` itself while tracing is off."""
    if not ENABLED or "asgi" in _disabled_instrumentations():
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: PLC0415
    from opentelemetry.util.http import get_excluded_urls, parse_excluded_urls  # noqa: PLC0415

    configured = os.environ.get("OTEL_PYTHON_ASGI_EXCLUDED_URLS") or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
    return OpenTelemetryMiddleware(
        app,
        excluded_urls=get_excluded_urls("ASGI") if configured else parse_excluded_urls(DEFAULT_EXCLUDED_URLS),
        default_span_details=_request_span_details,
        server_request_hook=_mask_query,
        exclude_spans=["receive", "send"],
    )


def name_request(method: str, route: str | None) -> None:
    """Names the current request's span by its URL pattern (``POST /api/chat/stream``)."""
    span = trace.get_current_span()
    if route is None or not span.is_recording():
        return
    template = "/" + route.lstrip("/")
    span.update_name(f"{method} {template}")
    span.set_attribute("http.route", template)


# --- model calls ---------------------------------------------------------------------------


def start_model_call(*, provider: str, model: str, max_tokens: int) -> Span:
    """The span of one model call, under the current span (the request's or the job's). It is not
    made current: the call is an async generator, whose context cannot be given back across yields."""
    return _tracer.start_span(
        f"chat {model}",
        kind=SpanKind.INTERNAL if provider == LOCAL_PROVIDER else SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": max_tokens,
        },
    )


def end_model_call(
    span: Span,
    *,
    response_model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    finish: str | None,
    error: str | None = None,
) -> None:
    """Ends a model call's span with what the provider answered: the model that answered, the
    tokens it reported (none when it reported none), why it stopped; or how it failed (``error``,
    a kind such as ``timeout`` or ``http_503``, never the provider's text)."""
    attributes: dict[str, Any] = {"gen_ai.response.model": response_model}
    if input_tokens is not None and output_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = input_tokens
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    if finish:
        attributes["gen_ai.response.finish_reasons"] = [finish]
    if error:
        attributes["error.type"] = error
        span.set_status(StatusCode.ERROR)
    span.set_attributes(attributes)
    span.end()


# --- tool calls ----------------------------------------------------------------------------


@contextmanager
def tool_call(*, name: str, mcp: bool) -> Iterator[Span]:
    """The current span while one tool call runs (the MCP client's own request span nests under it);
    its arguments and result are never recorded."""
    with _tracer.start_as_current_span(
        f"execute_tool {name}",
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "extension" if mcp else "function",
        },
        record_exception=False,  # an exception's text may quote the arguments
        set_status_on_exception=False,
    ) as span:
        yield span


def tool_failed(span: Span) -> None:
    """The tool answered an error (reported to the model, which goes on)."""
    span.set_attribute("error.type", "tool_error")
    span.set_status(StatusCode.ERROR)


# --- WebSocket turns -----------------------------------------------------------------------

TurnStarted = Callable[["asyncio.Task[str] | str"], None]


def _turn_outcome(task: asyncio.Task[str]) -> str | None:
    """How a turn's task ended, as an ``error.type`` (None: it ran to its ``done``)."""
    if task.cancelled():
        return "cancelled"
    exception = task.exception()
    if exception is not None:
        return type(exception).__name__
    return "turn_failed" if task.result() == "error" else None


def _end_turn(span: Span, started: asyncio.Task[str] | str) -> None:
    """Ends a WebSocket turn's span now (it did not start: ``started`` is why) or with its task."""

    def end(error: str | None) -> None:
        if error:
            span.set_attribute("error.type", error)
            span.set_status(StatusCode.ERROR)
        span.end()

    if isinstance(started, str):  # refused before it started: the error's code
        end(started)
    else:
        started.add_done_callback(lambda task: end(_turn_outcome(task)))


@contextmanager
def websocket_turn(*, scope: dict[str, Any], session_id: str) -> Iterator[TurnStarted]:
    """The span of one turn sent over a WebSocket (a ``message`` frame), current while the turn
    starts (its prepare phase's thread and the task it runs in inherit it) and ended with the turn's
    task: a child of the span whose ``traceparent`` the socket's handshake carried, else the root of
    a trace of its own. Yields ``started``, to call with the turn's task (``drain``: its last event)
    or, when it did not start, with the error's code."""
    from opentelemetry.instrumentation.asgi import asgi_getter  # noqa: PLC0415 - only while tracing is on

    span = _tracer.start_span(
        WEBSOCKET_TURN,
        context=propagate.extract(scope, getter=asgi_getter),
        kind=SpanKind.SERVER,
        attributes={"network.protocol.name": "websocket", "gen_ai.conversation.id": session_id},
    )
    handed: list[asyncio.Task[str] | str] = []
    try:
        with trace.use_span(span, end_on_exit=False):
            yield handed.append
    except BaseException as exc:
        handed.append(type(exc).__name__)
        raise
    finally:
        _end_turn(span, handed[0] if handed else "not_started")


# --- background jobs -----------------------------------------------------------------------

TRACE_CONTEXT_HEADERS = ("traceparent", "tracestate")  # W3C Trace Context: what continues a trace


def current_context() -> dict[str, str]:
    """The current trace context as a W3C carrier (``{"traceparent": …}``), to be continued later or
    elsewhere; empty while tracing is off or outside any span."""
    if not ENABLED:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    # the trace's own ids only: a caller's baggage (up to 8 KB of its choosing) is not kept in jobs or events
    return {name: carrier[name] for name in TRACE_CONTEXT_HEADERS if name in carrier}


def job_context(carrier: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments to add to a job's ``enqueue``: the current trace context (or ``carrier``, one
    kept earlier: a webhook event's) as ``{"trace_context": {"traceparent": …}}``, so that the job's
    span continues that trace in the worker; none while tracing is off. The job function accepts
    ``trace_context`` and leaves it to the worker (``job_span``)."""
    carried = dict(carrier) if carrier is not None else current_context()
    return {JOB_CONTEXT_ARGUMENT: carried} if carried else {}


def carried_context(kwargs: Mapping[str, Any]) -> Mapping[str, str] | None:
    """The trace context a job's keyword arguments carry (``job_context``), if any."""
    carrier = kwargs.get(JOB_CONTEXT_ARGUMENT)
    return carrier if isinstance(carrier, Mapping) else None


@contextmanager
def job_span(*, task: str, queue: str, job_id: str, carrier: Mapping[str, str] | None) -> Iterator[Span]:
    """The current span while a worker runs one job: a child of the span that queued it when the
    job carries its context, else the root of a trace of its own."""
    parent = propagate.extract(carrier) if carrier else None
    with _tracer.start_as_current_span(
        task.rpartition(".")[2] or task,
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "code.function.name": task,
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": job_id,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def job_failed(span: Span, exception_class: str) -> None:
    span.set_attribute("error.type", exception_class or "failed")
    span.set_status(StatusCode.ERROR)

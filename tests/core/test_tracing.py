"""OpenTelemetry traces (API.md §7) through real processes: a Daphne server and a ``db_worker --batch``
export OTLP over HTTP/protobuf to a receiver in this process, which decodes every request with
opentelemetry-proto. A streamed turn is one trace under the caller's ``traceparent`` (the request,
its model calls with the GenAI attributes, its tool call with the MCP client's request under it, its
statements across the thread hops, when asked for); an async turn's job continues the request's
trace in the worker; a WebSocket turn is one trace under a span of its own (under the handshake's
``traceparent``); every attempt of a webhook delivery continues the trace of the turn that recorded
its event; no span carries the message, the answer or the tool's argument and result. Unset,
nothing is installed and nothing is exported; set, statement spans are made only when asked for."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import uuid
from datetime import timedelta

import httpx
import pytest
import websockets
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.services import issue_tokens
from chat.models import Message
from tests.conftest import make_org, make_specialist, owner_of, watched_session
from tests.fakes.llm_server import Scenario
from tests.fakes.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import ROOT, Daphne, run_worker_batch, server_env
from tests.webhooks.conftest import hook
from tests.webhooks.receiver import Answer, ReceiverServer
from webhooks.jobs import QUEUE as WEBHOOK_QUEUE
from webhooks.models import Delivery, Event, Webhook
from webhooks.outbox import enqueue_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def receiver():
    with OTLPReceiver() as otlp:
        yield otlp


def _traced_env(endpoint: str, llm_url: str) -> dict[str, str]:
    return server_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans reach the receiver a moment after they end
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",  # statement spans too (off unless asked)
            "OPENAI_BASE_URL": f"{llm_url}/v1",
            "OPENAI_API_KEY": "sk-test",
            "ANTHROPIC_BASE_URL": llm_url,
            "ANTHROPIC_API_KEY": "sk-ant-test",
            "ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE": "content",  # the SDK's own spans would carry content
        }
    )


@pytest.fixture(scope="module")
def traced_server(django_db_setup, django_db_blocker, _fake_llm_server, receiver):
    """A Daphne process (and, for the async turn, its worker) exporting to ``receiver``."""
    env = _traced_env(receiver.endpoint, _fake_llm_server.url)
    with django_db_blocker.unblock():
        server = Daphne(env)
    server.env = env
    yield server
    server.stop()


def _traceparent() -> tuple[str, str, str]:
    """A caller's ``traceparent`` header, with its trace id and span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _one(spans: list[ReceivedSpan], **wanted: str) -> ReceivedSpan:
    found = [span for span in spans if all(getattr(span, key) == value for key, value in wanted.items())]
    assert len(found) == 1, (wanted, [(s.name, s.kind) for s in spans])
    return found[0]


def _models(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.attributes.get("gen_ai.operation.name") == "chat"]


def _assert_nowhere(secret: str, spans: list[ReceivedSpan]) -> None:
    for span in spans:
        text = json.dumps([span.name, span.attributes, span.events, span.resource], default=str)
        assert secret not in text, span


def _tools_specialist(org, mcp_server):
    from mcps.models import Connection
    from mcps.services import sync_connection

    connection = Connection.all_orgs.create(
        organization=org, name="Tools", url=mcp_server.url("streamable_http"), transport="streamable_http"
    )
    sync_connection(connection=connection)
    specialist = make_specialist(org, model="gpt-4o-mini")
    specialist.tools.set(connection.tools.filter(name="echo"))
    return specialist


def test_a_streamed_turn_is_one_trace_under_the_callers_traceparent(
    traced_server, receiver, fake_llm, mcp_server, bundled_data
):
    org = make_org(name="Traced")
    specialist = _tools_specialist(org, mcp_server)
    secret = uuid.uuid4().hex
    fake_llm.script(
        Scenario(
            chunks=[],
            tool_calls=[{"id": "c1", "name": "echo", "arguments": {"text": f"arg-{secret}"}}],
            usage=(100, 20),
        ),
        Scenario(chunks=["The answer: ", f"ans-{secret}"], usage=(150, 10), model="gpt-4o-mini-2024-07-18"),
    )
    header, trace_id, caller = _traceparent()
    response = httpx.post(
        f"{traced_server.url}/api/chat/stream",
        json={"specialistId": str(specialist.pk), "message": f"question-{secret}"},
        headers={"Authorization": f"Bearer {issue_tokens(user=owner_of(org)).access}", "traceparent": header},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert "event: done" in response.text
    assert f"ans-{secret}" in response.text
    assert Message.all_orgs.filter(content__contains=f"ans-{secret}").exists()  # the tool's result went back

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [span for span in spans if span.trace_id == trace_id]
        return any(span.kind == "SERVER" for span in mine) and len(_models(mine)) == 2

    receiver.wait_for(complete)
    spans = receiver.of_trace(trace_id)
    request = _one(spans, kind="SERVER")
    assert request.parent_span_id == caller  # the caller's traceparent is honoured
    assert request.name == "POST /api/chat/stream"
    assert request.attributes["http.route"] == "/api/chat/stream"
    assert request.resource["service.name"] == "leancore"

    first, second = sorted(_models(spans), key=lambda span: span.attributes["gen_ai.usage.input_tokens"])
    for model in (first, second):
        assert (model.name, model.kind, model.parent_span_id) == ("chat gpt-4o-mini", "CLIENT", request.span_id)
        assert model.attributes["gen_ai.provider.name"] == "openai"
        assert model.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert first.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert second.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"  # as the answer named it
    assert (first.attributes["gen_ai.usage.input_tokens"], first.attributes["gen_ai.usage.output_tokens"]) == (100, 20)
    assert first.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert (second.attributes["gen_ai.usage.input_tokens"], second.attributes["gen_ai.usage.output_tokens"]) == (
        150,
        10,
    )
    assert second.attributes["gen_ai.response.finish_reasons"] == ["stop"]

    tool = _one(spans, name="execute_tool echo")
    assert (tool.kind, tool.parent_span_id, tool.status) == ("INTERNAL", request.span_id, "UNSET")
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "echo"
    mcp_request = _one(spans, name="MCP send tools/call echo")  # the MCP SDK's own client span
    assert (mcp_request.kind, mcp_request.parent_span_id) == ("CLIENT", tool.span_id)

    # the statements of the sync phases (threads) are under the request too
    statements = [span for span in spans if span.attributes.get("db.system") == "postgresql"]
    assert statements
    assert {span.parent_span_id for span in statements} <= {span.span_id for span in spans}

    _assert_nowhere(secret, receiver.spans)  # neither the message, the answer, the argument nor the result


def test_a_failed_model_call_is_an_error_span_named_by_its_kind(traced_server, receiver, fake_llm, bundled_data):
    org = make_org(name="Traced failure")
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(status=400), Scenario(status=400))
    header, trace_id, _ = _traceparent()
    response = httpx.post(
        f"{traced_server.url}/api/chat/stream",
        json={"specialistId": str(specialist.pk), "message": "fail"},
        headers={"Authorization": f"Bearer {issue_tokens(user=owner_of(org)).access}", "traceparent": header},
        timeout=60,
    )
    assert response.status_code == 502, response.text

    def complete(spans: list[ReceivedSpan]) -> bool:
        return any(span.trace_id == trace_id and span.kind == "SERVER" for span in spans)

    receiver.wait_for(complete)
    spans = receiver.of_trace(trace_id)
    model = _one(_models(spans), kind="CLIENT")  # a 400 is not retried
    assert (model.status, model.attributes["error.type"]) == ("ERROR", "http_400")
    assert "gen_ai.usage.input_tokens" not in model.attributes  # the provider reported none
    assert _one(spans, kind="SERVER").attributes["http.status_code"] == 502


def test_an_anthropic_call_has_our_span_only_never_the_sdks_with_its_content(
    traced_server, receiver, fake_llm, bundled_data
):
    org = make_org(name="Traced Claude")
    specialist = make_specialist(org, model="claude-haiku-4-5")
    secret = uuid.uuid4().hex
    fake_llm.script(Scenario(chunks=[f"claude-{secret}"], usage=(30, 3)))
    header, trace_id, _ = _traceparent()
    response = httpx.post(
        f"{traced_server.url}/api/chat/stream",
        json={"specialistId": str(specialist.pk), "message": f"question-{secret}"},
        headers={"Authorization": f"Bearer {issue_tokens(user=owner_of(org)).access}", "traceparent": header},
        timeout=60,
    )
    assert f"claude-{secret}" in response.text

    def complete(spans: list[ReceivedSpan]) -> bool:
        return any(span.trace_id == trace_id and span.kind == "SERVER" for span in spans)

    receiver.wait_for(complete)
    spans = receiver.of_trace(trace_id)
    model = _one(_models(spans), kind="CLIENT")
    assert (model.name, model.attributes["gen_ai.provider.name"]) == ("chat claude-haiku-4-5", "anthropic")
    assert (model.attributes["gen_ai.usage.input_tokens"], model.attributes["gen_ai.usage.output_tokens"]) == (30, 3)
    assert model.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    scopes = {span.scope for span in spans}  # the SDK's would be com.anthropic.sdk.python
    assert scopes <= {"leancore", "opentelemetry.instrumentation.asgi", "opentelemetry.instrumentation.psycopg"}
    _assert_nowhere(secret, receiver.spans)


def test_an_async_turns_and_a_task_runs_jobs_continue_their_requests_traces_in_the_worker(
    traced_server, receiver, fake_llm, bundled_data
):
    org = make_org(name="Traced later")
    specialist = make_specialist(org, model="gpt-4o-mini")
    secret = uuid.uuid4().hex
    fake_llm.script(Scenario(chunks=[f"later-{secret}"], usage=(200, 20)))
    auth = {"Authorization": f"Bearer {issue_tokens(user=owner_of(org)).access}"}
    header, trace_id, caller = _traceparent()
    queued = httpx.post(
        f"{traced_server.url}/api/chat/async",
        json={"specialistId": str(specialist.pk), "message": f"question-{secret}"},
        headers={**auth, "traceparent": header},
        timeout=60,
    )
    assert queued.status_code == 202, queued.text
    task = httpx.post(
        f"{traced_server.url}/tasks",
        json={"title": f"task-{secret}", "assigneeSpecialistId": str(make_specialist(org, model="local").pk)},
        headers=auth,
        timeout=60,
    )
    assert task.status_code == 201, task.text
    run_header, run_trace_id, run_caller = _traceparent()
    run = httpx.post(
        f"{traced_server.url}/tasks/{task.json()['id']}/run", headers={**auth, "traceparent": run_header}, timeout=60
    )
    assert run.status_code == 202, run.text
    worker = run_worker_batch(traced_server.env)
    assert worker.returncode == 0, worker.stderr
    message = Message.all_orgs.get(pk=queued.json()["messageId"])
    assert (message.status, message.content) == ("completed", f"later-{secret}")
    assert Message.all_orgs.get(pk=run.json()["messageId"]).status == "completed"

    def complete(spans: list[ReceivedSpan]) -> bool:
        turn = [span for span in spans if span.trace_id == trace_id]
        task_run = [span for span in spans if span.trace_id == run_trace_id]
        return all(any(span.kind == "SERVER" for span in mine) and _models(mine) for mine in (turn, task_run))

    receiver.wait_for(complete)
    spans = receiver.of_trace(trace_id)
    request = _one(spans, kind="SERVER")
    assert (request.name, request.parent_span_id) == ("POST /api/chat/async", caller)
    job = _one(spans, kind="CONSUMER")
    assert (job.name, job.parent_span_id, job.status) == ("run_queued_turn", request.span_id, "UNSET")
    assert job.attributes["code.function.name"] == "chat.jobs.run_queued_turn"
    assert job.attributes["messaging.destination.name"] == "default"
    model = _one(_models(spans), kind="CLIENT")
    assert model.parent_span_id == job.span_id  # the worker's model call is in the job's span
    assert (model.attributes["gen_ai.usage.input_tokens"], model.attributes["gen_ai.usage.output_tokens"]) == (200, 20)
    assert model.resource["service.name"] == request.resource["service.name"] == "leancore"

    spans = receiver.of_trace(run_trace_id)
    request = _one(spans, kind="SERVER")
    assert (request.name, request.parent_span_id) == ("POST /tasks/<uuid:pk>/run", run_caller)
    job = _one(spans, kind="CONSUMER")
    assert (job.name, job.parent_span_id) == ("run_task_turn", request.span_id)
    model = _one(_models(spans), kind="INTERNAL")  # the offline model runs in the worker's process
    assert (model.parent_span_id, model.attributes["gen_ai.provider.name"]) == (job.span_id, "local")
    _assert_nowhere(secret, receiver.spans)


def _statements(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.attributes.get("db.system") == "postgresql"]


async def _converse(url: str, headers: dict[str, str], *frames: dict) -> list[dict]:
    """Sends each frame on one socket and reads until the turn's end (a start refused answers an
    ``error`` frame without ``messageId``); returns every frame received."""
    received = []
    async with websockets.connect(url, additional_headers=headers) as socket:
        for frame in frames:
            await socket.send(json.dumps(frame))
            while True:
                got = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
                received.append(got)
                if got["event"] == "done" or (got["event"] == "error" and "id" not in got):
                    break
    return received


def test_a_websocket_turn_is_one_trace_under_a_span_of_its_own(traced_server, receiver, fake_llm, bundled_data):
    watched = watched_session("Traced socket")
    session_id = str(watched.session.pk)
    secret = uuid.uuid4().hex
    fake_llm.script(Scenario(chunks=[f"ws-{secret}"], usage=(40, 4)), Scenario(chunks=["again"], usage=(41, 5)))
    header, trace_id, caller = _traceparent()
    url = watched.socket_url(traced_server.url)
    asked = {"type": "message", "message": f"question-{secret}"}
    frames = asyncio.run(_converse(url, {"traceparent": header}, asked))
    assert frames[-1]["event"] == "done"
    assert f"ws-{secret}" in json.dumps(frames)
    unknown = {"type": "message", "message": "with a file", "attachmentIds": [str(uuid.uuid4())]}
    frames = asyncio.run(_converse(url, {}, unknown, {"type": "message", "message": "again"}))
    refusal = next(frame for frame in frames if frame["event"] == "error")
    assert frames[-1]["event"] == "done"

    def turns(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [
            s for s in spans if s.name == "websocket message" and s.attributes["gen_ai.conversation.id"] == session_id
        ]

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = turns(spans)
        return len(mine) == 3 and all(_models([s for s in spans if s.trace_id == t.trace_id]) for t in mine[:1])

    received = receiver.wait_for(complete)
    spans = receiver.of_trace(trace_id)
    turn = _one(spans, name="websocket message")
    assert (turn.kind, turn.parent_span_id, turn.status) == ("SERVER", caller, "UNSET")  # the handshake's traceparent
    assert turn.attributes["network.protocol.name"] == "websocket"
    model = _one(_models(spans), kind="CLIENT")
    assert (model.parent_span_id, model.name) == (turn.span_id, "chat gpt-4o-mini")  # in the turn's task
    assert (model.attributes["gen_ai.usage.input_tokens"], model.attributes["gen_ai.usage.output_tokens"]) == (40, 4)
    assert model.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    # the prepare and record phases' statements (threads) are the turn's too
    assert turn.span_id in {span.parent_span_id for span in _statements(spans)}
    assert {span.parent_span_id for span in spans if span is not turn} <= {span.span_id for span in spans}

    refused, answered = sorted((s for s in turns(received) if s.trace_id != trace_id), key=lambda s: s.status)
    assert (refused.status, refused.attributes["error.type"]) == ("ERROR", refusal["data"]["code"])
    assert not _models(receiver.of_trace(refused.trace_id))
    assert answered.parent_span_id == ""  # no traceparent: a trace of its own
    assert answered.trace_id != refused.trace_id
    model = _one(_models(receiver.of_trace(answered.trace_id)), kind="CLIENT")
    assert (model.parent_span_id, model.attributes["gen_ai.usage.input_tokens"]) == (answered.span_id, 41)
    _assert_nowhere(secret, receiver.spans)


def test_every_attempt_of_a_webhook_delivery_continues_the_trace_of_the_turn_that_recorded_its_event(
    traced_server, receiver, fake_llm, bundled_data, settings
):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True  # the endpoint is on loopback (the worker's env allows it too)
    org = make_org(name="Traced webhooks")
    specialist = make_specialist(org, model="gpt-4o-mini")
    secret = uuid.uuid4().hex
    fake_llm.script(Scenario(chunks=[f"hook-{secret}"], usage=(60, 6)))
    header, trace_id, caller = _traceparent()
    with ReceiverServer() as endpoint:
        hook(endpoint, org, "/traced", ["turn.completed"])
        endpoint.answers["/traced"] = [Answer(status=503), Answer(status=200)]
        response = httpx.post(
            f"{traced_server.url}/api/chat/stream",
            json={"specialistId": str(specialist.pk), "message": f"question-{secret}"},
            headers={"Authorization": f"Bearer {issue_tokens(user=owner_of(org)).access}", "traceparent": header},
            timeout=60,
        )
        assert "event: done" in response.text
        event = Event.all_orgs.get(organization=org)
        assert event.trace_context["traceparent"].split("-")[1] == trace_id  # kept in the outbox row
        assert run_worker_batch(traced_server.env).returncode == 0  # 503: a retry due in a minute
        retry = DBTaskResult.objects.filter(queue_name=WEBHOOK_QUEUE, status="READY")
        assert retry.update(run_after=timezone.now() - timedelta(seconds=1)) == 1  # due now
        assert run_worker_batch(traced_server.env).returncode == 0
        got = endpoint.at("/traced")
    assert [(item.verified, item.payload["id"]) for item in got] == [(True, str(event.pk))] * 2
    assert "traceparent" not in {key.lower() for item in got for key in item.headers}  # the trace stays ours

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [span for span in spans if span.trace_id == trace_id]
        return any(s.kind == "SERVER" for s in mine) and len([s for s in mine if s.name == "deliver_webhook"]) == 2

    receiver.wait_for(complete)
    spans = receiver.of_trace(trace_id)
    request = _one(spans, kind="SERVER")
    assert (request.name, request.parent_span_id) == ("POST /api/chat/stream", caller)
    attempts = [span for span in spans if span.name == "deliver_webhook"]
    for attempt in attempts:  # the first and its retry, both children of the cause
        assert (attempt.kind, attempt.parent_span_id) == ("CONSUMER", request.span_id)
        assert attempt.attributes["code.function.name"] == "webhooks.jobs.deliver_webhook"
        assert attempt.attributes["messaging.destination.name"] == WEBHOOK_QUEUE
    assert len({attempt.attributes["messaging.message.id"] for attempt in attempts}) == 2
    assert _one(_models(spans), kind="CLIENT").parent_span_id == request.span_id
    _assert_nowhere(secret, receiver.spans)


def test_off_an_event_keeps_no_trace_context_and_its_job_carries_none(bundled_data):
    org = make_org(name="Untraced webhooks")
    Webhook.all_orgs.create(organization=org, url="https://hooks.example.com/x", events=["credits.granted"])
    event = enqueue_event(org_id=org.pk, type="credits.granted", subject_id=None, data={"amount": "1"})
    assert event is not None
    assert Event.all_orgs.get(pk=event.pk).trace_context == {}
    delivery = str(Delivery.all_orgs.get(event=event).pk)
    [job] = [
        job for job in DBTaskResult.objects.filter(queue_name=WEBHOOK_QUEUE) if job.args_kwargs["args"] == [delivery]
    ]
    assert job.args_kwargs["kwargs"] == {}  # a job a worker of any release runs


PROBE = """
import asyncio, json, sys, threading
import httpx
from leancore.asgi import application
from opentelemetry import trace
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from core import tracing

async def ask():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        answer = await client.get(f"/no/such/route?search={sys.argv[2]}&flag", headers={"traceparent": sys.argv[1]})
        return answer.status_code

print(json.dumps({
    "status": asyncio.run(ask()),
    "enabled": tracing.ENABLED,
    "provider": type(trace.get_tracer_provider()).__name__,
    "http": type(application.application_mapping["http"]).__name__,
    "psycopg": PsycopgInstrumentor().is_instrumented_by_opentelemetry,
    "otel_threads": [t.name for t in threading.enumerate() if "Otel" in t.name],
    "sdk": any(m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter")) for m in sys.modules),
}))
"""


def _probe(env: dict[str, str], traceparent: str, query: str) -> dict:
    """A process that imports the ASGI app as Daphne does and serves one request through it."""
    run = subprocess.run(
        [sys.executable, "-c", PROBE, traceparent, query],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_unset_nothing_is_installed_and_nothing_exported_and_set_the_same_process_exports(
    django_db_setup, django_db_blocker
):
    with OTLPReceiver() as otlp, django_db_blocker.unblock():
        env = _traced_env(otlp.endpoint, "http://127.0.0.1:9")
        off = {key: value for key, value in env.items() if key != "OTEL_EXPORTER_OTLP_ENDPOINT"}
        off["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{otlp.endpoint}/v1/traces"  # where it would go
        header, trace_id, caller = _traceparent()
        secret = uuid.uuid4().hex
        unset = _probe(off, header, secret)
        assert unset == {
            "status": 404,
            "enabled": False,
            "provider": "ProxyTracerProvider",  # the API's placeholder: no SDK provider
            "http": "ASGIHandler",  # Django's app itself, unwrapped
            "psycopg": False,
            "otel_threads": [],  # no exporter
            "sdk": False,  # not even the SDK's tracing modules, nor the exporter's
        }
        assert otlp.requests == 0  # the process has exited: a span would have been flushed by now

        on = _probe(env, header, secret)  # the same process with the variable: the guard can fire
        assert on["sdk"] is True
        assert (on["enabled"], on["provider"], on["http"], on["psycopg"]) == (
            True,
            "TracerProvider",
            "OpenTelemetryMiddleware",
            True,  # asked for: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS set, without psycopg
        )
        default = {key: value for key, value in env.items() if key != "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"}
        assert _probe(default, header, secret)["psycopg"] is False  # no statement spans unless asked
        otlp.wait_for(lambda spans: len(spans) >= 2)  # both processes' request spans
        assert [span.kind for span in otlp.spans] == ["SERVER", "SERVER"]
        request = otlp.spans[0]
        assert (request.trace_id, request.parent_span_id, request.name) == (trace_id, caller, "GET")
        assert request.attributes["http.url"].endswith("/no/such/route?search=***&***")  # no query value
        _assert_nowhere(secret, otlp.spans)

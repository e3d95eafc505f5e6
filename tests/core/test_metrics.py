"""GET /metrics in one process (no multi-process directory: the process's own registry): the token
rules, the contract's families with their types and labels exactly, labels that are patterns and
never ids, the jobs gauge read from the jobs table, MCP tool calls, and ``check --deploy``. The
scrape of every process of ``manage.py serve`` is tests/core/test_metrics_serve.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.test import AsyncClient

from accounts.services import issue_tokens
from chat import fallbacks
from chat.context import ToolBinding
from chat.tools import execute_tool
from core import metrics, metrics_export
from leancore.checks import metrics_token_in_production
from mcps.models import Connection, Tool
from tests.conftest import assert_problem, client_for, make_org, make_specialist, owner_of
from tests.core.prometheus_text import TOKEN, assert_contract, parse, value
from tests.fakes.llm_server import Scenario


def scrape(client=None) -> dict:
    response = (client or client_for()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


pytestmark = pytest.mark.django_db


def test_without_a_token_configured_metrics_is_an_unknown_path(anon, settings):
    settings.METRICS_TOKEN = ""
    unset = anon.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    unknown = anon.get("/metrics-nowhere")
    assert_problem(unset, 404, "not_found")
    assert unset.json().keys() == unknown.json().keys()


@pytest.mark.usefixtures("metrics_on")
def test_only_the_bearer_token_opens_it(anon, monkeypatch):
    compared = []
    real = metrics_export.hmac.compare_digest
    monkeypatch.setattr(metrics_export.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    for headers, code in (
        ({}, "not_authenticated"),  # no bearer token
        ({"HTTP_AUTHORIZATION": "Bearer"}, "not_authenticated"),
        ({"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}, "not_authenticated"),
        ({"HTTP_AUTHORIZATION": TOKEN}, "not_authenticated"),
        ({"HTTP_AUTHORIZATION": f"Bearer {TOKEN[:-1]}"}, "token_not_valid"),  # a wrong one
        ({"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"}, "token_not_valid"),
    ):
        refused = anon.get("/metrics", **headers)
        assert_problem(refused, 401, code)
        assert refused["WWW-Authenticate"].startswith("Bearer")
    assert len(compared) == 6  # every guess compared in constant time, none short-circuited
    assert anon.get("/metrics", HTTP_AUTHORIZATION=f"bearer  {TOKEN}").status_code == 200
    assert_problem(anon.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"), 405, "method_not_allowed")
    assert_problem(anon.post("/metrics"), 401, "not_authenticated")


@pytest.mark.usefixtures("metrics_on")
def test_every_family_of_the_contract_with_its_type_and_labels(owner, org):
    specialist = make_specialist(org)
    client = client_for(owner)
    assert client.get(f"/api/chat/sessions/{uuid.uuid4()}").status_code == 404
    # every recording helper once, as its callers do
    metrics.record_turn_end(metrics.TurnMeter(), provider="local", model="local", code="")
    meter = metrics.TurnMeter()
    meter.seen("delta")
    metrics.record_turn_end(meter, provider="local", model="local", code="provider_error")
    metrics.record_billed_call(provider="local", model="local", input_tokens=3, output_tokens=2, credits=1)
    metrics.record_fallback("gpt-4o", "local")
    metrics.record_mcp_tool_call(ok=True)
    metrics.record_db_pool_wait(0.001)
    metrics.websocket_opened()
    metrics.websocket_closed()
    assert client.post("/api/chat/stream", {"specialistId": str(specialist.pk)}, format="json").status_code == 400
    billing_refusal = type("Refusal", (Exception,), {"extra": {"scope": "org_balance"}})()
    metrics.record_refusal(billing_refusal)
    metrics.record_refusal(ValueError("no scope: not a refusal"))
    assert_contract(scrape(), every_family_recorded=True)


@pytest.mark.usefixtures("metrics_on")
def test_a_route_is_its_url_pattern_and_methods_are_a_fixed_set(owner):
    client = client_for(owner)
    before = scrape()
    session_id = uuid.uuid4()
    assert client.get(f"/api/chat/sessions/{session_id}").status_code == 404
    assert client.get(f"/api/chat/sessions/{session_id}/").status_code == 404  # the same pattern
    assert client.get(f"/nowhere/{session_id}").status_code == 404
    assert client.generic("BREW", "/health").status_code == 405
    after = scrape()
    name = "leancore_http_requests_total"
    pattern = {"method": "GET", "route": "api/chat/sessions/<uuid:pk>", "status": "404"}
    assert value(after, name, **pattern) - value(before, name, **pattern) == 2
    unmatched = {"method": "GET", "route": metrics.UNMATCHED_ROUTE, "status": "404"}
    assert value(after, name, **unmatched) - value(before, name, **unmatched) == 1
    brewed = {"method": "other", "route": "health", "status": "405"}
    assert value(after, name, **brewed) - value(before, name, **brewed) == 1
    duration = "leancore_http_request_duration_seconds"
    count = f"{duration}_count"
    labels = {"method": "GET", "route": "api/chat/sessions/<uuid:pk>"}
    assert value(after, duration, count, **labels) - value(before, duration, count, **labels) == 2
    assert not any(str(session_id) in sample.labels.get("route", "") for sample in after[name].samples)


@pytest.mark.usefixtures("metrics_on")
def test_jobs_waiting_are_read_from_the_jobs_table(owner, org, django_capture_on_commit_callbacks):
    specialist = make_specialist(org)
    before = value(scrape(), "leancore_jobs_waiting", queue="default")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            sent = client_for(owner).post(
                "/api/chat/async", {"specialistId": str(specialist.pk), "message": "later"}, format="json"
            )
            assert sent.status_code == 202, sent.content
    assert value(scrape(), "leancore_jobs_waiting", queue="default") == before + 2


@pytest.mark.usefixtures("metrics_on")
@pytest.mark.django_db(transaction=True)
def test_mcp_tool_calls_are_counted_by_outcome(org, mcp_server):
    connection = Connection.all_orgs.create(
        organization=org, name="c", url=mcp_server.url("streamable_http"), transport="streamable_http"
    )
    add = Tool.all_orgs.create(organization=org, connection=connection, name="add")
    explode = Tool.all_orgs.create(organization=org, connection=connection, name="explode")

    def call(tool: Tool, arguments: dict) -> bool:
        binding = ToolBinding(
            model_name=tool.name, tool_id=tool.pk, connection_id=connection.pk, remote_name=tool.name, org_id=org.pk
        )
        return async_to_sync(execute_tool)(binding=binding, arguments=arguments).is_error

    before = scrape()
    assert call(add, {"a": 1, "b": 2}) is False
    assert call(explode, {}) is True
    assert async_to_sync(execute_tool)(binding=None, arguments={}).is_error  # no MCP call was made
    after = scrape()
    name = "leancore_mcp_tool_calls_total"
    for outcome in ("ok", "error"):
        assert value(after, name, outcome=outcome) - value(before, name, outcome=outcome) == 1, outcome


def test_a_turn_that_ended_with_a_402_was_refused_and_any_other_error_failed():
    assert metrics.outcome_of("") == "completed"
    for refusal in ("insufficient_credits", "budget_exhausted", "circuit_open"):
        assert metrics.outcome_of(refusal) == "refused"
    for failure in ("llm_unavailable", "client_disconnected", "service_unavailable", "no-such-code"):
        assert metrics.outcome_of(failure) == "failed"


@pytest.mark.usefixtures("metrics_on")
def test_a_turn_s_end_is_counted_once():
    """A listener that leaves just after the turn was recorded: the turn stays completed."""
    before = scrape()
    meter = metrics.TurnMeter()
    metrics.record_turn_end(meter, provider="local", model="once", code="")
    metrics.record_turn_end(meter, provider="local", model="once", code="client_disconnected")
    after = scrape()
    for outcome, moved in (("completed", 1), ("failed", 0)):
        labels = {"provider": "local", "model": "once", "outcome": outcome}
        assert value(after, "leancore_turns_total", **labels) - value(before, "leancore_turns_total", **labels) == moved
    count = "leancore_turn_duration_seconds_count"
    labels = {"provider": "local", "model": "once"}
    assert value(after, "leancore_turn_duration_seconds", count, **labels) == 1


@pytest.mark.usefixtures("metrics_on")
@pytest.mark.django_db(transaction=True)
async def test_a_fallback_is_counted_and_the_answering_model_s_tokens_are_its_own(bundled_data, fake_llm, monkeypatch):
    async def no_pause(seconds: float) -> None:
        return None

    monkeypatch.setattr(fallbacks, "pause", no_pause)
    primary, backup = "gpt-4o-mini", "claude-haiku-4-5"

    def setup():
        org = make_org(name="Failover")
        specialist = make_specialist(org, model=primary, fallback_models=[backup])
        return specialist, issue_tokens(user=owner_of(org)).access

    specialist, token = await database_sync_to_async(setup)()
    fake_llm.script(Scenario(status=503), Scenario(status=503), Scenario(chunks=["Up", " again."], usage=(800, 40)))
    before = await database_sync_to_async(scrape)()
    response = await AsyncClient().post(
        "/api/chat/stream",
        {"specialistId": str(specialist.pk), "message": "Q3?"},
        content_type="application/json",
        headers={"accept": "text/event-stream", "authorization": f"Bearer {token}"},
    )
    assert "event: done" in b"".join([chunk async for chunk in response.streaming_content]).decode()
    after = await database_sync_to_async(scrape)()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("leancore_llm_fallbacks_total", from_model=primary, to_model=backup) == 1
    assert moved("leancore_llm_tokens_total", provider="anthropic", model=backup, direction="input") == 800
    assert moved("leancore_llm_tokens_total", provider="anthropic", model=backup, direction="output") == 40
    assert moved("leancore_llm_tokens_total", provider="openai", model=primary, direction="input") == 0
    assert moved("leancore_turns_total", provider="openai", model=primary, outcome="completed") == 1  # the turn's model


def test_the_metrics_route_is_not_in_the_public_api_schema(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["paths"], "the schema lists the API"
    assert not [path for path in schema["paths"] if path.rstrip("/").endswith("metrics")]


def test_check_deploy_wants_a_long_metrics_token_when_debug_is_off(settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = ""
    assert [m.id for m in metrics_token_in_production(None)] == ["leancore.W020"]
    settings.METRICS_TOKEN = "short-token"
    assert [(m.id, m.level) for m in metrics_token_in_production(None)] == [("leancore.E020", 40)]
    settings.METRICS_TOKEN = TOKEN
    assert metrics_token_in_production(None) == []
    settings.DEBUG = True
    settings.METRICS_TOKEN = ""
    assert metrics_token_in_production(None) == []


def test_serve_s_directory_is_emptied_at_start_and_a_dead_process_s_live_gauges_go(tmp_path, monkeypatch):
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    monkeypatch.setenv(metrics_export.MULTIPROC_ENV, str(tmp_path))
    for kind in ("counter_1234", "gauge_livesum_1234", "gauge_livesum_5678"):
        stale = MmapedDict(str(tmp_path / f"{kind}.db"))
        stale.write_value(mmap_key("leancore_websocket_connections", "x", [], [], "h"), 3.0, 0.0)
        stale.close()
    (tmp_path / "notes.txt").write_text("the operator's own file")
    directory = metrics_export.MultiprocessDirectory.prepare()
    assert (directory.path, directory.owned) == (tmp_path, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # only metric files are removed
    for pid in (1234, 5678):
        MmapedDict(str(tmp_path / f"counter_{pid}.db")).close()
        MmapedDict(str(tmp_path / f"gauge_livesum_{pid}.db")).close()
    directory.process_died(1234)
    assert sorted(_names(tmp_path.glob("*.db"))) == ["counter_1234.db", "counter_5678.db", "gauge_livesum_5678.db"]
    directory.remove()
    assert tmp_path.exists()  # the operator's directory stays
    monkeypatch.delenv(metrics_export.MULTIPROC_ENV)
    own = metrics_export.MultiprocessDirectory.prepare()
    assert own.owned
    assert own.path.is_dir()
    own.remove()
    assert not own.path.exists()


def _names(paths: Iterable) -> list[str]:
    return [path.name for path in paths]

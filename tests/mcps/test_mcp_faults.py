"""An MCP server that disappears in the middle of a tool call, during a real chat turn: the SDK-built
server runs as its own process and is killed (SIGKILL) while its tool works. The turn goes on with a
tool error the model sees, bills exactly what the model produced, holds nothing, and the
connection's status says what happened. The next call after the server is back clears it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat.models import Message
from mcps.models import Connection
from mcps.services import sync_connection
from tests.chat.test_stream_e2e import parse_sse
from tests.conftest import make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario, free_port
from tests.servers import Daphne, server_env

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


class MCPProcess:
    """tests/fakes/mcp_server.py as a child process on a free port."""

    def __init__(self, transport: str, marker: Path) -> None:
        self.transport = transport
        self.marker = marker
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MCPProcess:
        self.marker.unlink(missing_ok=True)
        command = [sys.executable, "-m", "tests.fakes.mcp_server", "--port", str(self.port)]
        command += ["--transport", self.transport, "--marker", str(self.marker)]
        self.process = subprocess.Popen(command, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the MCP server process did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'sse' if self.transport == 'sse' else 'mcp'}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def mcp_process(request, tmp_path, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True  # the server process runs on loopback
    server = MCPProcess(request.param, tmp_path / "called").start()
    yield server
    server.kill()


@pytest.mark.parametrize("mcp_process", ["streamable_http", "sse"], indirect=True)
def test_a_server_killed_mid_tool_call_becomes_a_tool_error_the_model_sees(
    daphne_server, fake_llm, bundled_data, mcp_process
):
    org = make_org(name="Vanishing tools")
    token = issue_tokens(user=owner_of(org)).access
    connection = Connection.all_orgs.create(
        organization=org, name="Flaky", url=mcp_process.url, transport=mcp_process.transport
    )
    sync_connection(connection=connection)
    specialist = make_specialist(org, model="gpt-4o-mini")
    specialist.tools.set(connection.tools.filter(name__in=["hang", "add"]))
    fake_llm.script(
        Scenario(chunks=[], tool_calls=[{"id": "c1", "name": "hang", "arguments": {}}], usage=(100, 20)),
        Scenario(chunks=["The tool ", "is gone."], usage=(150, 10)),
    )
    outcome: dict[str, httpx.Response] = {}

    def turn() -> None:
        with httpx.Client(base_url=daphne_server.url, timeout=60) as client:
            outcome["response"] = client.post(
                "/api/chat/stream",
                json={"specialistId": str(specialist.pk), "message": "use the tool"},
                headers={"Authorization": f"Bearer {token}"},
            )

    thread = threading.Thread(target=turn)
    thread.start()
    deadline = time.monotonic() + 30
    while not mcp_process.marker.exists():  # the tool is running on the server
        assert time.monotonic() < deadline, (
            f"the tool was never called: {outcome['response'].text if outcome else None}"
        )
        time.sleep(0.05)
    killed_at = time.monotonic()
    mcp_process.kill()
    thread.join(timeout=45)
    assert not thread.is_alive()
    # the server's disappearance is noticed at once, not when the 30 s tool timeout runs out
    assert time.monotonic() - killed_at < 15
    response = outcome["response"]
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    names = [name for _, name, _ in events]
    assert names == ["session", "tool_call", "tool_result", "delta", "delta", "usage", "done"], names
    result = events[2][2]
    assert result["isError"] is True
    assert result["result"].startswith("The tool failed: ")
    # the model saw the error as the tool's result and answered
    assert fake_llm.requests[-1]["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": result["result"]}
    # both model calls billed exactly once: (100+150)×15/1e6 + (20+10)×60/1e6 = 0.00555
    assert events[5][2]["credits"] == "0.005550"
    assert sorted(e.amount for e in LedgerEntry.all_orgs.filter(organization=org, kind="usage")) == [
        Decimal("-0.002850"),
        Decimal("-0.002700"),
    ]
    assert CreditAccount.all_orgs.get(organization=org).balance == Decimal("99.994450")
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    message = Message.all_orgs.get(pk=events[0][2]["messageId"])
    assert (message.status, message.content) == ("completed", "The tool is gone.")
    assert message.tool_calls[0]["isError"] is True
    # the connection says what happened; the API shows it
    connection.refresh_from_db()
    assert connection.status == "error"
    assert connection.last_error == result["result"].removeprefix("The tool failed: ")
    listed = httpx.get(f"{daphne_server.url}/orgs/{org.pk}/mcps", headers={"Authorization": f"Bearer {token}"})
    (shown,) = listed.json()["results"]
    assert (shown["status"], shown["lastError"]) == ("error", connection.last_error)
    # the server comes back on the same port: the next successful call clears the error
    mcp_process.start()
    fake_llm.script(
        Scenario(chunks=[], tool_calls=[{"id": "c2", "name": "add", "arguments": {"a": 1, "b": 2}}]),
        Scenario(chunks=["3"]),
    )
    again = httpx.post(
        f"{daphne_server.url}/api/chat/stream",
        json={"specialistId": str(specialist.pk), "message": "add"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert next(data for _, name, data in parse_sse(again.text) if name == "tool_result")["result"] == "3"
    connection.refresh_from_db()
    assert (connection.status, connection.last_error) == ("connected", "")


@pytest.fixture(scope="module")
def impatient_server(django_db_setup, django_db_blocker, _fake_llm_server):
    """A Daphne process that gives an MCP tool one second (the default is 30)."""
    with django_db_blocker.unblock():
        server = Daphne(
            server_env(
                {
                    "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1",
                    "OPENAI_API_KEY": "sk-test",
                    "MCP_TOOL_TIMEOUT_SECONDS": "1",
                }
            )
        )
    yield server
    server.stop()


@pytest.mark.parametrize("mcp_process", ["streamable_http", "sse"], indirect=True)
def test_a_tool_slower_than_the_timeout_is_a_tool_error_and_the_turn_completes(
    impatient_server, fake_llm, bundled_data, mcp_process
):
    org = make_org(name="Slow tools")
    token = issue_tokens(user=owner_of(org)).access
    connection = Connection.all_orgs.create(
        organization=org, name="Slow", url=mcp_process.url, transport=mcp_process.transport
    )
    sync_connection(connection=connection)
    connection.refresh_from_db()
    assert (connection.status, connection.last_error) == ("connected", "")
    specialist = make_specialist(org, model="gpt-4o-mini")
    specialist.tools.set(connection.tools.filter(name="hang"))  # answers never
    fake_llm.script(
        Scenario(chunks=[], tool_calls=[{"id": "c1", "name": "hang", "arguments": {}}], usage=(100, 20)),
        Scenario(chunks=["No answer ", "in time."], usage=(150, 10)),
    )
    started = time.monotonic()
    response = httpx.post(
        f"{impatient_server.url}/api/chat/stream",
        json={"specialistId": str(specialist.pk), "message": "use the slow tool"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert mcp_process.marker.exists()  # the tool was called, and never answered
    assert response.status_code == 200, response.text
    assert elapsed < 10, elapsed  # given up after MCP_TOOL_TIMEOUT_SECONDS (1 s), not 30
    events = parse_sse(response.text)
    names = [name for _, name, _ in events]
    assert names == ["session", "tool_call", "tool_result", "delta", "delta", "usage", "done"], names
    result = events[2][2]
    assert result["isError"] is True
    assert result["result"] == "The tool failed: The MCP server did not answer in time."
    # the model saw the error as the tool's result and answered
    assert len(fake_llm.requests) == 2
    assert fake_llm.requests[-1]["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": result["result"]}
    # each model call billed once: (100+150)×15/1e6 + (20+10)×60/1e6 = 0.00555
    assert events[5][2]["credits"] == "0.005550"
    assert sorted(e.amount for e in LedgerEntry.all_orgs.filter(organization=org, kind="usage")) == [
        Decimal("-0.002850"),
        Decimal("-0.002700"),
    ]
    account = CreditAccount.all_orgs.get(organization=org)
    assert (account.balance, account.reserved) == (Decimal("99.994450"), 0)
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    message = Message.all_orgs.get(pk=events[0][2]["messageId"])
    assert (message.status, message.content) == ("completed", "No answer in time.")
    assert message.tool_calls[0]["isError"] is True
    connection.refresh_from_db()
    assert (connection.status, connection.last_error) == ("error", "The MCP server did not answer in time.")
    listed = httpx.get(f"{impatient_server.url}/orgs/{org.pk}/mcps", headers={"Authorization": f"Bearer {token}"})
    (shown,) = listed.json()["results"]
    assert (shown["status"], shown["lastError"]) == ("error", "The MCP server did not answer in time.")

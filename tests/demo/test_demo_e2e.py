"""The demo end to end: the demo MCP server as its own process, seed_demo against it (allow-listed, not
all private networks), and a chat turn on the offline ``local`` model whose tool call goes over MCP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from io import StringIO

import httpx
import pytest
from django.core.management import call_command

from accounts.models import User
from accounts.services import issue_tokens
from mcps.models import Connection
from tests.fakes.llm_server import free_port
from tests.servers import ROOT, Daphne, server_env


def _events(text: str) -> list[tuple[str, dict]]:
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        found.append((fields["event"], json.loads(fields["data"])))
    return found


@pytest.fixture
def demo_mcp_process():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "leancore.demo_mcp", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the demo MCP server did not start") from None
            time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_a_local_model_turn_calls_the_demo_tool_over_mcp(demo_mcp_process, settings, bundled_data):
    origin = f"http://127.0.0.1:{demo_mcp_process}"
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    settings.MCP_ALLOWED_PRIVATE_URLS = [origin]
    out = StringIO()
    call_command("seed_demo", "--i-know", "--mcp-url", f"{origin}/mcp", stdout=out)
    assert "connected, tools calculate" in out.getvalue()
    assert Connection.all_orgs.get(organization__slug="demo").status == "connected"
    server = Daphne(server_env({"MCP_ALLOW_PRIVATE_NETWORKS": "false", "MCP_ALLOWED_PRIVATE_URLS": origin}))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            # (the tests hash passwords with a fast hasher the server does not know: a token instead)
            owner = User.objects.get(email="demo@leancore.local")
            client.headers["authorization"] = f"Bearer {issue_tokens(user=owner).access}"
            specialists = client.get("/specialists").json()["results"]
            ada = next(s for s in specialists if s["name"] == "Ada")
            for message, expected in (
                ('Please calculate expression="1250 * 12 * 1.08"', "1250 * 12 * 1.08 = 16200"),
                ("lookup_invoice invoice_id=INV-1003", "INV-1003: Umbrella, 980.00 EUR, overdue."),
            ):
                response = client.post(
                    "/api/chat/stream",
                    json={"specialistId": ada["id"], "message": message},
                    headers={"accept": "text/event-stream"},
                )
                assert response.status_code == 200, response.text
                events = _events(response.text)
                names = [name for name, _ in events]
                assert "tool_call" in names, names
                assert "tool_result" in names, names
                assert names[-1] == "done", names
                result = next(data for name, data in events if name == "tool_result")
                assert expected in json.dumps(result), result
                answer = "".join(data.get("text", "") for name, data in events if name == "delta")
                assert expected in answer, answer  # the model's answer says what the tool returned
    finally:
        server.stop()

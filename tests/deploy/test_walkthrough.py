"""The README's walk-through, run as printed (only the base URL is the test server's) against a real
server seeded as run.sh seeds it: the demo MCP server as its own process, seed_demo connected to it
through the allow-list, one Daphne process with the worker inside it (run.sh without Redis)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from decimal import Decimal

import pytest

from tests.demo.test_demo_e2e import demo_mcp_process  # noqa: F401 - a fixture
from tests.deploy import walkthrough
from tests.servers import ROOT, Daphne, server_env


def test_the_walkthrough_is_bash_blocks_between_the_markers():
    blocks = walkthrough.blocks()
    assert len(blocks) == 6, blocks
    commands = "\n".join(blocks)
    for needed in (
        "/auth/login",
        "/specialists",
        "/api/chat/stream",
        "/billing/credits/balance",
        "/api/chat/async",
        "/api-keys",
        "/billing/usage/summary",
    ):
        assert needed in commands
    assert "localhost:8000" not in commands  # every URL goes through BASE
    assert commands.count("127.0.0.1:8000") == 1


@pytest.mark.django_db(transaction=True)
def test_the_readme_walkthrough_works_as_printed(demo_mcp_process, bundled_data):  # noqa: F811
    for tool in ("curl", "jq"):
        assert shutil.which(tool), f"the walk-through needs {tool}"
    origin = f"http://127.0.0.1:{demo_mcp_process}"
    env = server_env(
        {
            "MCP_ALLOW_PRIVATE_NETWORKS": "false",
            "MCP_ALLOWED_PRIVATE_URLS": origin,
            "EMBEDDED_WORKER": "true",  # as run.sh without Redis: async turns reach the server's sockets
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
    )
    # seed_demo in its own process: the password is hashed as the server checks it (not the tests' hasher)
    seeded = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--i-know", "--mcp-url", f"{origin}/mcp"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "connected, tools calculate" in seeded.stdout, seeded.stdout
    server = Daphne(env)
    try:
        done = subprocess.run(
            [shutil.which("bash") or "/bin/bash", "-c", walkthrough.script(server.url)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        server.stop()
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    login, specialists, stream, after, watched, keyed = walkthrough.steps(output)
    assert login == "", login
    names = [line.split("\t")[0] for line in specialists.splitlines()]
    assert sorted(names) == ["Ada", "Alan", "Grace"], specialists

    before, sse = stream.split("\n", 1)
    events = [
        (block["event"], json.loads(block["data"]))
        for block in (
            dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line) for chunk in sse.split("\n\n")
        )
        if "event" in block
    ]
    kinds = [kind for kind, _ in events]
    assert (kinds[0], kinds[-1]) == ("session", "done"), kinds
    call = next(data for kind, data in events if kind == "tool_call")
    assert (call["name"], call["arguments"]) == ("lookup_customer", {"name": "Initech"}), call
    result = next(data for kind, data in events if kind == "tool_result")
    assert "Bill Lumbergh" in result["result"], result
    assert result["isError"] is False, result
    usage = next(data for kind, data in events if kind == "usage")
    assert Decimal(usage["credits"]) > 0

    balance_before, balance_after = Decimal(before.strip()), Decimal(after.strip())
    assert balance_after < balance_before, (before, after)
    assert balance_before - balance_after == Decimal(usage["credits"])
    assert Decimal(usage["balance"]) == balance_after

    lines = watched.splitlines()
    assert lines[0] == "connected", watched
    assert json.loads(lines[1])["status"] == "queued", watched  # POST /api/chat/async answered 202
    frames = [json.loads(line) for line in lines[2:] if line.startswith("{")]
    kinds = [frame["event"] for frame in frames]
    assert (kinds[0], kinds[-1]) == ("session", "done"), kinds
    call = next(frame["data"] for frame in frames if frame["event"] == "tool_call")
    assert call["name"] == "calculate", call
    result = next(frame["data"] for frame in frames if frame["event"] == "tool_result")
    assert result["result"] == "1250*12*1.08 = 16200", result
    assert re.fullmatch(r"closed 1000 ?", lines[-1]), watched  # the client closed after done and exited

    # an org API key's turn: streamed, billed to the key, told apart in the summary
    usage_line, summary = keyed.split("\n", 2)[1], keyed.split("\n", 2)[2]
    assert keyed.startswith("event: usage\n"), keyed
    key_usage = json.loads(usage_line.removeprefix("data: "))
    assert Decimal(key_usage["credits"]) > 0
    rows = [json.loads(line) for line in summary.splitlines() if line.startswith("{")]
    by_key = {row["apiKeyId"] is not None: row for row in rows}
    assert set(by_key) == {False, True}, rows
    assert by_key[True]["calls"] == 1, rows
    assert by_key[True]["credits"] == key_usage["credits"], rows

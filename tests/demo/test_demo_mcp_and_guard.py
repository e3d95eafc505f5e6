"""The demo MCP server's tools, and the SSRF guard's narrow allow-list (on save and at connect time)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpcore2
import pytest
from asgiref.sync import async_to_sync
from mcp.server.transport_security import TransportSecuritySettings

from core.url_guard import UrlNotAllowedError, _PinnedBackend, allow_listed, check_url, origin_of
from leancore import demo_mcp
from mcps.client import MCPError, Target, list_remote_tools
from tests.fakes.llm_server import ThreadedServer, free_port
from tests.servers import ROOT


@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("1250 * 12 * 1.08", "1250 * 12 * 1.08 = 16200"),
        ("(2 + 3) ** 2 - 1", "(2 + 3) ** 2 - 1 = 24"),
        ("2^10", "2^10 = 1024"),
        ("1/3", "1/3 = 0.3333333333"),
        ("0.1 + 0.2", "0.1 + 0.2 = 0.3"),
        ("please calculate 7 * 6 for me", "7 * 6 = 42"),
    ],
)
def test_the_calculator_is_exact_arithmetic(expression, answer):
    assert demo_mcp.calculate(expression) == answer


@pytest.mark.parametrize("expression", ["__import__('os').system('id')", "10 / 0", "9 ** 999", "x + 1", "", "1" * 300])
def test_the_calculator_refuses_anything_else(expression):
    with pytest.raises(demo_mcp.CalculationError):
        demo_mcp.calculate(expression)


def test_the_lookups_read_the_demo_data():
    assert demo_mcp.lookup_customer("initech").startswith("Initech: Business plan")
    assert "INV-1003, INV-1004" in demo_mcp.lookup_customer("please lookup_customer Umbrella")
    assert "No customer" in demo_mcp.lookup_customer("Nobody")
    assert demo_mcp.lookup_invoice("inv 1002") == "INV-1002: Initech, 3150.50 EUR, open."
    assert "No invoice" in demo_mcp.lookup_invoice("INV-9")


def test_origins_are_compared_exactly(settings):
    settings.MCP_ALLOWED_PRIVATE_URLS = ["http://127.0.0.1:8765"]
    assert origin_of("HTTP://127.0.0.1:8765/mcp?x=1") == "http://127.0.0.1:8765"
    assert origin_of("https://[::1]/mcp") == "https://[::1]:443"
    assert allow_listed("http://127.0.0.1:8765/mcp")
    assert allow_listed("http://127.0.0.1:8765/other/path")
    for url in (
        "http://127.0.0.1:8766/mcp",  # another port
        "https://127.0.0.1:8765/mcp",  # another scheme
        "http://127.0.0.1/mcp",
        "http://localhost:8765/mcp",  # another name for it
        "http://127.0.0.2:8765/mcp",
        "http://[::1]:8765/mcp",
    ):
        assert not allow_listed(url), url


def test_the_allow_list_lets_exactly_its_origin_through(settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    settings.MCP_ALLOWED_PRIVATE_URLS = ["http://127.0.0.1:8765"]
    assert check_url("http://127.0.0.1:8765/mcp") == ["127.0.0.1"]
    for url in (
        "http://127.0.0.1:8766/mcp",
        "http://127.0.0.1:6379/",
        "http://localhost:8765/mcp",
        "http://10.0.0.5:8765/mcp",
        "http://192.168.1.1:8765/mcp",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8765/mcp",
    ):
        with pytest.raises(UrlNotAllowedError):
            check_url(url)
    settings.MCP_ALLOWED_PRIVATE_URLS = []
    with pytest.raises(UrlNotAllowedError):
        check_url("http://127.0.0.1:8765/mcp")


def test_a_pinned_connection_refuses_another_port():
    async def connect():
        return await _PinnedBackend("127.0.0.1", ["127.0.0.1"], 8765).connect_tcp("127.0.0.1", 6379)

    with pytest.raises(httpcore2.ConnectError, match="not the checked MCP port"):
        async_to_sync(connect)()


@pytest.fixture
def two_demo_servers():
    security = TransportSecuritySettings(allowed_hosts=["127.0.0.1:*"], allowed_origins=["http://127.0.0.1:*"])
    first = ThreadedServer(demo_mcp.build_server().streamable_http_app(transport_security=security), lifespan="on")
    second = ThreadedServer(demo_mcp.build_server().streamable_http_app(transport_security=security), lifespan="on")
    with first, second:
        yield first, second


def test_at_connect_time_only_the_allow_listed_server_is_reached(settings, two_demo_servers):
    first, second = two_demo_servers
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    settings.MCP_ALLOWED_PRIVATE_URLS = [first.url]
    tools = async_to_sync(list_remote_tools)(Target(f"{first.url}/mcp", "streamable_http", {}), time_limit=10)
    assert [tool.name for tool in tools] == ["calculate", "lookup_customer", "lookup_invoice"]
    with pytest.raises(MCPError, match="private, loopback"):  # the same host on another port
        async_to_sync(list_remote_tools)(Target(f"{second.url}/mcp", "streamable_http", {}), time_limit=10)
    settings.MCP_ALLOWED_PRIVATE_URLS = []  # taken off the list: refused before any connection
    with pytest.raises(MCPError, match="private, loopback"):
        async_to_sync(list_remote_tools)(Target(f"{first.url}/mcp", "streamable_http", {}), time_limit=10)


def test_production_settings_allow_no_private_url():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "PYTEST"))}
    env.update({"DEBUG": "false", "DJANGO_SETTINGS_MODULE": "leancore.settings"})
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.MCP_ALLOWED_PRIVATE_URLS, settings.MCP_ALLOW_PRIVATE_NETWORKS)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[] False"


def test_the_demo_server_runs_as_its_own_process():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "leancore.demo_mcp", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"http://127.0.0.1:{port}/mcp" in process.stdout.readline()
        deadline = time.monotonic() + 30
        while True:  # printed before uvicorn listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the demo MCP server did not listen"
                time.sleep(0.1)
        from django.test import override_settings

        with override_settings(MCP_ALLOW_PRIVATE_NETWORKS=False, MCP_ALLOWED_PRIVATE_URLS=[f"http://127.0.0.1:{port}"]):
            tools = async_to_sync(list_remote_tools)(
                Target(f"http://127.0.0.1:{port}/mcp", "streamable_http", {}), time_limit=15
            )
        assert {tool.name for tool in tools} == {"calculate", "lookup_customer", "lookup_invoice"}
    finally:
        process.terminate()
        process.wait(timeout=10)

"""seed_demo's demo content and its demo MCP connection; the long commands' progress output."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from mcp.server.transport_security import TransportSecuritySettings

from billing.models import BudgetAlert, CreditAccount, LedgerEntry, ModelRate
from leancore import demo_mcp
from mcps.models import Connection, Tool
from orgs.models import Membership, Organization
from specialists.models import Specialist
from tests.fakes.llm_server import ThreadedServer, free_port
from workspaces.models import WorkspaceFile

pytestmark = pytest.mark.django_db


class FakeTTY(StringIO):
    def isatty(self) -> bool:
        return True


REDRAWN = "\r\x1b[2K"  # rich's live bar: back to the line's start, the line erased, drawn again
BAR = "━"


@pytest.fixture
def demo_server(settings):
    security = TransportSecuritySettings(allowed_hosts=["127.0.0.1:*"], allowed_origins=["http://127.0.0.1:*"])
    with ThreadedServer(demo_mcp.build_server().streamable_http_app(transport_security=security), lifespan="on") as s:
        settings.MCP_ALLOW_PRIVATE_NETWORKS = False
        settings.MCP_ALLOWED_PRIVATE_URLS = [s.url]
        yield f"{s.url}/mcp"


def _seed(*args: str, stdout: StringIO | None = None) -> str:
    out = stdout or StringIO()
    call_command("seed_demo", "--i-know", *args, stdout=out)  # the tests run with DEBUG off
    return out.getvalue()


def test_seed_demo_connects_the_demo_tools_and_is_idempotent(demo_server):
    out = _seed("--mcp-url", demo_server)
    _seed("--mcp-url", demo_server)
    org = Organization.objects.get(slug="demo")
    connection = Connection.all_orgs.get(organization=org)
    assert (connection.status, connection.url) == ("connected", demo_server)
    assert sorted(Tool.all_orgs.filter(connection=connection).values_list("name", flat=True)) == [
        "calculate",
        "lookup_customer",
        "lookup_invoice",
    ]
    for specialist in Specialist.all_orgs.filter(organization=org):
        assert specialist.tools.count() == 3
    assert "connected, tools calculate, lookup_customer, lookup_invoice" in out
    assert 'calculate expression="1250 * 12 * 1.08"' in out  # a prompt that makes the local model call it


def test_seed_demo_has_a_member_a_file_and_a_budget_alert_once(settings):
    settings.MCP_ALLOWED_PRIVATE_URLS = []
    out = _seed()
    _seed()
    org = Organization.objects.get(slug="demo")
    roles = sorted(Membership.all_orgs.filter(organization=org).values_list("user__email", "role"))
    assert roles == [("demo@leancore.local", "owner"), ("member@leancore.local", "member")]
    (item,) = WorkspaceFile.all_orgs.filter(organization=org)
    assert item.filename == "q3-budget.md"
    assert "Q3 budget" in item.text
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.period_spent == Decimal("27.5")  # 55 % of the budget of 50
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == 1
    (alert,) = BudgetAlert.all_orgs.filter(organization=org)
    assert (alert.kind, alert.threshold) == ("budget_threshold", Decimal(50))
    assert "used 50" in out
    assert "alerts:" in out
    assert "member@leancore.local" in out


def test_seed_demo_succeeds_without_the_demo_server(settings):
    origin = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    settings.MCP_ALLOWED_PRIVATE_URLS = [origin]
    out = _seed("--mcp-url", f"{origin}/mcp")
    connection = Connection.all_orgs.get(organization__slug="demo")
    assert connection.status == "error"
    assert connection.last_error
    assert f"{origin}/mcp: error" in out
    assert "python -m leancore.demo_mcp" in out
    assert "Demo organization ready." in out


def test_seed_demo_without_the_allow_list_keeps_the_connection_refused(settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    settings.MCP_ALLOWED_PRIVATE_URLS = []
    out = _seed("--mcp-url", "http://127.0.0.1:8765/mcp")
    _seed("--mcp-url", "http://127.0.0.1:8765/mcp")
    (connection,) = Connection.all_orgs.filter(organization__slug="demo")
    assert connection.status == "error"
    assert "private, loopback" in connection.last_error
    assert "MCP_ALLOWED_PRIVATE_URLS" in out


def test_seed_demo_draws_a_bar_on_a_terminal(settings):
    settings.MCP_ALLOWED_PRIVATE_URLS = []
    tty = FakeTTY()
    _seed(stdout=tty)
    assert REDRAWN in tty.getvalue()
    assert BAR in tty.getvalue()
    assert "4/4 demo MCP server" in tty.getvalue()
    plain = _seed()
    assert "\r" not in plain
    assert "\x1b" not in plain
    assert (
        "1/4 owner and member\n2/4 specialists, workspace, project\n3/4 spend and alerts\n4/4 demo MCP server\n"
        in plain
    )


def test_sync_mcp_shows_progress(org, demo_server):
    Connection.all_orgs.create(organization=org, name="demo", url=demo_server)
    out = StringIO()
    call_command("sync_mcp", stdout=out)
    assert "1/1 " in out.getvalue()
    assert "ok: +3" in out.getvalue()
    assert "\r" not in out.getvalue()
    tty = FakeTTY()
    call_command("sync_mcp", stdout=tty)
    assert REDRAWN in tty.getvalue()
    assert BAR in tty.getvalue()
    assert "1/1 " in tty.getvalue()
    assert "Synced 1 of 1" in tty.getvalue()


def _rates(count: int) -> list[dict[str, object]]:
    return [
        {
            "model": f"bulk-{index}",
            "provider": "openai",
            "displayName": f"Bulk {index}",
            "inputCreditsPerMillion": "1",
            "outputCreditsPerMillion": "2",
            "contextWindow": 1000,
        }
        for index in range(count)
    ]


def test_load_model_rates_on_a_big_file_shows_progress(tmp_path):
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(_rates(1000)))
    out = StringIO()
    call_command("load_model_rates", str(path), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("200/1000 ")
    assert lines[4].startswith("1000/1000 ")
    assert "1000 rates created, 0 updated." in out.getvalue()
    assert "\r" not in out.getvalue()
    tty = FakeTTY()
    call_command("load_model_rates", str(path), stdout=tty)
    assert REDRAWN in tty.getvalue()
    assert BAR in tty.getvalue()
    assert "0 rates created, 1000 updated." in tty.getvalue()


def test_load_model_rates_is_all_or_nothing_and_names_the_files_row(tmp_path):
    rows = _rates(500)
    rows[450]["provider"] = "martian"
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(CommandError, match=r"^Row 450: provider"):
        call_command("load_model_rates", str(path), stdout=StringIO())
    assert not ModelRate.objects.filter(model__startswith="bulk-").exists()

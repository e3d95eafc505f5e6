"""Tenancy below the view: in the services, selectors and the turn pipeline, every read of an
org-owned model names its organization (``for_org(org)`` or an ``organization=`` filter). The few
reads that span organizations on purpose (maintenance, a row found by its own id a moment after
an org-scoped read, a token that names its record) are listed here with the reason; a new bare
read fails this test until it is scoped or listed."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
APPS = ["accounts", "orgs", "webhooks", "billing", "specialists", "mcps", "workspaces", "files", "chat", "tasks"]


def _modules() -> list[Path]:
    found: list[Path] = []
    for app in APPS:
        base = ROOT / app
        found += [base / name for name in ("services.py", "selectors.py") if (base / name).exists()]
        found += sorted((base / "services").glob("*.py")) if (base / "services").is_dir() else []
    found += [
        ROOT / p
        for p in (
            "chat/turns.py",
            "chat/queued.py",
            "chat/inputs.py",
            "chat/slots.py",
            "chat/pipeline.py",
            "chat/tools.py",
            "chat/artifacts.py",
            "chat/context.py",
            "chat/metering.py",
            "mcps/client.py",
            "files/uploads.py",
            "tasks/jobs.py",
            "webhooks/jobs.py",
            "webhooks/outbox.py",
            "chat/webhook_events.py",
        )
    ]
    return found


def _org_owned() -> set[str]:
    owned = set()
    for model in apps.get_models():
        scoped = hasattr(model._default_manager, "for_org")
        if scoped or any(field.name == "organization" for field in model._meta.get_fields()):
            owned.add(model.__name__)
    return owned - {"Organization"}


ORG_KEYWORDS = {"organization", "organization_id", "session__organization", "session__organization_id"}


def _chain(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST:
    """The whole ``Model.objects.a(...).b(...)`` expression that starts at ``node``."""
    while True:
        parent = parents.get(node)
        if (isinstance(parent, ast.Attribute) and parent.value is node) or (
            isinstance(parent, ast.Call) and parent.func is node
        ):
            node = parent
            continue
        return node


def _names_its_org(chain: ast.AST) -> bool:
    for call in ast.walk(chain):
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Attribute) and call.func.attr == "for_org":
            return True
        if any(keyword.arg in ORG_KEYWORDS for keyword in call.keywords):
            return True
    return False


def _bare_reads() -> set[tuple[str, str, str]]:
    """(module, function, model) of every read of an org-owned model that does not name its org."""
    owned = _org_owned()
    found = set()
    for path in _modules():
        tree = ast.parse(path.read_text())
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if not (isinstance(node, ast.Attribute) and node.attr == "objects"):
                    continue
                if not (isinstance(node.value, ast.Name) and node.value.id in owned):
                    continue
                if not _names_its_org(_chain(node, parents)):
                    found.add((str(path.relative_to(ROOT)), func.name, node.value.id))
    return found


# (module, function, model): why this read spans organizations (or needs no org named).
SPANS_ORGS = {
    (
        "specialists/selectors.py",
        "specialists_queryset",
        "Specialist",
    ): "the list view's base; scope_queryset scopes it",
    ("chat/selectors.py", "messages_prefetch", "Message"): "prefetched under sessions already read for one org",
    ("orgs/selectors.py", "roles_of", "Membership"): "one user's own roles in the orgs asked about",
    ("orgs/selectors.py", "active_memberships", "Membership"): "one user's own memberships, across their orgs",
    ("orgs/services.py", "_send_invitation", "Invitation"): "the invitation of a membership just written",
    ("orgs/services.py", "_take_invitation", "Invitation"): "a one-time token names its invitation",
    ("orgs/services.py", "is_unclaimed", "Membership"): "one account's own memberships, across their orgs",
    ("chat/services.py", "fail_stuck_turns", "Message"): "maintenance over every org's stuck turns",
    ("chat/services.py", "fail_queued_message", "Message"): "a job's own message, by the id it carries",
    ("chat/services.py", "fail_overdue_queued_turns", "Message"): "maintenance over every org's queued turns",
    ("chat/queued.py", "load_queued_turn", "Message"): "a job's own message, by the id it carries",
    ("chat/slots.py", "admit", "Message"): "a job's own message, by the id it carries",
    ("tasks/jobs.py", "finish_task_run", "Message"): "a job's own message, by the id it carries",
    ("tasks/jobs.py", "finish_task_run", "Task"): "a job's own task run, by the ids it carries",
    ("tasks/services.py", "recover_failed_runs", "Message"): "maintenance over every org's task runs",
    ("tasks/services.py", "recover_failed_runs", "Task"): "maintenance over every org's task runs",
    ("billing/services/metering.py", "release_holds_of_message", "Reservation"): "the holds of one message, by id",
    ("billing/services/metering.py", "release_stale_reservations", "Reservation"): "maintenance over every org",
    ("billing/services/metering.py", "messages_with_open_holds", "Reservation"): "maintenance over every org's holds",
    ("chat/metering.py", "release_holds_of_ended_turns", "Message"): "maintenance over the turns that hold credits",
    ("chat/webhook_events.py", "turn_failed", "ChatSession"): "the session of a message being failed, by its id",
    ("webhooks/jobs.py", "org_of", "Delivery"): "a job's own delivery, by the id it carries",
    ("webhooks/jobs.py", "begin_attempt", "Delivery"): "a job's own delivery, by the id it carries",
    ("webhooks/jobs.py", "record_attempt", "Delivery"): "a job's own delivery, by the id it carries",
    ("webhooks/jobs.py", "record_attempt", "Webhook"): "the webhook of a job's own delivery",
    ("webhooks/jobs.py", "recover_stalled_deliveries", "Delivery"): "maintenance over every org's deliveries",
    ("webhooks/jobs.py", "purge_old_events", "Event"): "maintenance over every org's old events",
    ("webhooks/jobs.py", "purge_old_events", "Delivery"): "the pending attempts of those events",
}


def test_every_read_of_an_org_owned_model_names_its_org():
    bare = _bare_reads()
    unexplained = sorted(bare - SPANS_ORGS.keys())
    assert not unexplained, f"scope these reads with for_org(org) (or list why they span orgs): {unexplained}"
    assert not SPANS_ORGS.keys() - bare, f"stale entries: {sorted(SPANS_ORGS.keys() - bare)}"


def test_the_walk_finds_a_bare_read(tmp_path, monkeypatch):
    """The check itself: a module with an unscoped read is found, its scoped twin is not."""
    module = tmp_path / "services.py"
    module.write_text(
        "def bare(pk):\n    return Specialist.objects.filter(pk=pk).first()\n"
        "def scoped(org, pk):\n    return Specialist.objects.for_org(org).filter(pk=pk).first()\n"
        "def named(org, pk):\n    return Specialist.objects.filter(organization=org, pk=pk).first()\n"
    )
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "_modules", lambda: [module])
    monkeypatch.setattr(this, "ROOT", tmp_path)
    assert _bare_reads() == {("services.py", "bare", "Specialist")}

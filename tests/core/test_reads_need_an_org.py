"""Org-owned rows fail closed. A model's ``objects`` runs a query only once it names its organization
(``for_org(org)``, or a filter on the org field) or says why it spans organizations
(``across_orgs(reason)``): anything else raises ``UnscopedQueryError`` instead of reading or writing
every org's rows. The models are found from the app registry (a new org-owned model is covered), and
the few deliberate ``across_orgs`` uses of the app code are listed here with where they stand; a new
one fails this test until it is listed (and reviewed)."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest
from django.apps import apps
from django.db import models

from orgs.models import OrgScopedQuerySet, UnscopedQueryError
from tests.conftest import make_org

ROOT = Path(__file__).resolve().parents[2]
APPS = [
    "core",
    "accounts",
    "orgs",
    "billing",
    "signup",
    "files",
    "mcps",
    "specialists",
    "workspaces",
    "chat",
    "tasks",
    "webhooks",
    "leancore",
]


def org_owned_models() -> list[type[models.Model]]:
    return [
        model
        for model in apps.get_models()
        if isinstance(getattr(model, "objects", None), models.Manager)
        and isinstance(model.objects.all(), OrgScopedQuerySet)
    ]


def test_org_owned_models_are_found():
    names = {model.__name__ for model in org_owned_models()}
    assert {"ChatSession", "Message", "LedgerEntry", "Membership", "ApiKey", "Specialist", "Task"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize("model", org_owned_models(), ids=lambda model: model.__name__)
def test_objects_fails_closed_without_an_org(model):
    org = make_org(name="Scoped")
    unscoped = model.objects.filter(pk=uuid.uuid4())
    for run in (
        unscoped.first,
        lambda: list(unscoped),
        unscoped.count,
        unscoped.exists,
        lambda: unscoped.update(pk=uuid.uuid4()),
        unscoped.delete,
        lambda: model.objects.all().aggregate(n=models.Count("pk")),
        lambda: list(model.objects.all().iterator()),
    ):
        with pytest.raises(UnscopedQueryError):
            run()
    queryset = model.objects.all()
    org_field = queryset.org_field
    with pytest.raises(UnscopedQueryError):  # excluding one org names none
        model.objects.exclude(**{org_field: org}).count()
    # what runs: its org named, by for_org or by the org field, or a reason given
    assert model.objects.for_org(org).filter(pk=uuid.uuid4()).first() is None
    assert model.objects.filter(**{f"{org_field}_id": org.pk}).count() >= 0
    assert model.objects.filter(**{org_field: org}).exists() in (True, False)
    assert model.objects.across_orgs("this test").filter(pk=uuid.uuid4()).first() is None
    # the framework's default manager (the admin, forms, related managers) is the named unscoped one
    assert model._default_manager.name == "all_orgs"
    assert model.all_orgs.filter(pk=uuid.uuid4()).count() == 0


def _chain(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST:
    while True:
        parent = parents.get(node)
        if (isinstance(parent, ast.Attribute) and parent.value is node) or (
            isinstance(parent, ast.Call) and parent.func is node
        ):
            node = parent
            continue
        return node


def _modules() -> list[Path]:
    return [path for app in APPS for path in sorted((ROOT / app).rglob("*.py")) if "migrations" not in path.parts]


def unscoped_uses(modules: list[Path] | None = None) -> dict[tuple[str, str, str], str]:
    """(module, function, model) → the reason given, for every ``Model.objects.across_orgs(reason)`` and
    every ``Model.all_orgs`` of the app code (the latter's reason: ``""``, none can be given)."""
    found: dict[tuple[str, str, str], str] = {}
    for path in modules if modules is not None else _modules():
        tree = ast.parse(path.read_text())
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                    continue
                where = (str(path.relative_to(ROOT)), func.name, node.value.id)
                if node.attr == "all_orgs":
                    found[where] = ""
                    continue
                if node.attr != "objects":
                    continue
                for call in ast.walk(_chain(node, parents)):
                    if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "across_orgs":
                        reason = call.args[0] if call.args else None
                        text = reason.value if isinstance(reason, ast.Constant) else ""
                        found[where] = text if isinstance(text, str) else ""
    return found


# (module, function, model): the app code's deliberate reads and writes across organizations.
SPANS_ORGS = {
    ("orgs/api_keys.py", "create_api_key", "ApiKey"),  # prefixes are unique across every org
    ("orgs/api_keys.py", "find_api_key", "ApiKey"),  # a credential names its key by prefix
    ("orgs/context.py", "resolve_org", "Membership"),  # the caller's own memberships: their only org
    ("orgs/selectors.py", "active_memberships", "Membership"),  # a user's own organizations
    ("orgs/selectors.py", "organization_count_for", "Membership"),  # how many organizations a user lists
    ("orgs/services.py", "is_unclaimed", "Membership"),  # whether an account belongs to any org
    ("orgs/services.py", "_take_invitation", "Invitation"),  # a one-time token names its invitation
    ("specialists/selectors.py", "specialists_queryset", "Specialist"),  # a view's base: for_org scopes it
    ("mcps/management/commands/sync_mcp.py", "handle", "Connection"),  # the operator's command, every org
    ("billing/services/metering.py", "release_holds_of_message", "Reservation"),  # one message's holds, by id
    ("billing/services/metering.py", "messages_with_open_holds", "Reservation"),  # maintenance
    ("billing/services/metering.py", "release_stale_reservations", "Reservation"),  # maintenance
    ("chat/consumers.py", "_open", "ChatSession"),  # the session in a socket's URL; access checked next
    ("chat/metering.py", "release_holds_of_ended_turns", "Message"),  # maintenance
    ("chat/queued.py", "load_queued_turn", "Message"),  # a job's own message, by the id it carries
    ("chat/selectors.py", "messages_prefetch", "Message"),  # prefetched under sessions read in their org
    ("chat/sending.py", "_replay", "Message"),  # the message of the caller's own idempotency record
    ("chat/services.py", "fail_stuck_turns", "Message"),  # maintenance
    ("chat/services.py", "fail_overdue_queued_turns", "Message"),  # maintenance
    ("chat/services.py", "fail_queued_message", "Message"),  # a job's own message
    ("chat/slots.py", "admit", "Message"),  # a job's own message
    ("chat/slots.py", "_others_waiting", "Message"),  # the other orgs with turns waiting
    ("chat/webhook_events.py", "turn_failed", "ChatSession"),  # the session of a message being failed
    ("tasks/jobs.py", "finish_task_run", "Message"),  # a job's own message
    ("tasks/jobs.py", "finish_task_run", "Task"),  # a job's own task run
    ("tasks/services.py", "recover_failed_runs", "Message"),  # maintenance
    ("tasks/services.py", "recover_failed_runs", "Task"),  # maintenance
    ("webhooks/jobs.py", "org_of", "Delivery"),  # a job's own delivery
    ("webhooks/jobs.py", "begin_attempt", "Delivery"),  # a job's own delivery
    ("webhooks/jobs.py", "record_attempt", "Delivery"),  # a job's own delivery
    ("webhooks/jobs.py", "recover_stalled_deliveries", "Delivery"),  # maintenance
    ("webhooks/jobs.py", "purge_old_events", "Event"),  # maintenance
}


def test_every_unscoped_use_is_listed_and_says_why():
    uses = unscoped_uses()
    unexplained = sorted(where for where, reason in uses.items() if len(reason) < 8)
    assert not unexplained, f"give across_orgs a reason (and never use all_orgs in the app code): {unexplained}"
    unlisted = sorted(uses.keys() - SPANS_ORGS)
    assert not unlisted, f"a new read across organizations: scope it with for_org, or list it here: {unlisted}"
    assert not SPANS_ORGS - uses.keys(), f"stale entries: {sorted(SPANS_ORGS - uses.keys())}"


def test_the_walk_finds_unscoped_uses(tmp_path, monkeypatch):
    """The check itself: across_orgs with and without a reason, and all_orgs, are found; a scoped read
    is not."""
    module = ROOT / "tests" / "core" / "_unscoped_sample.py"
    module.write_text(
        "def spans(pk):\n    return Specialist.objects.across_orgs('a job names its row').filter(pk=pk).first()\n"
        "def silent(pk):\n    return Specialist.objects.across_orgs(REASON).filter(pk=pk).first()\n"
        "def framework(pk):\n    return Specialist.all_orgs.filter(pk=pk).first()\n"
        "def scoped(org, pk):\n    return Specialist.objects.for_org(org).filter(pk=pk).first()\n"
    )
    try:
        found = unscoped_uses([module])
    finally:
        module.unlink()
    where = "tests/core/_unscoped_sample.py"
    assert found == {
        (where, "spans", "Specialist"): "a job names its row",
        (where, "silent", "Specialist"): "",
        (where, "framework", "Specialist"): "",
    }

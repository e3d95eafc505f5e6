"""Rows for every list endpoint of the URLconf (``core.list_routes``), for ``bench/rest_lists.py``.

Each list endpoint has one filler here (``FILLERS``, keyed by the schema path); an endpoint without
one stops the bench before it starts (``missing_fillers``), so a new list endpoint is never skipped.
Rows are bulk-created (no signals, no services): what a list reads, not what made it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

BATCH = 2000


@dataclass
class Fill:
    """One bench org, its owner and what the fillers made: each list's URL (parents' ids in place),
    the token it is read with, and how many rows it must at least list."""

    rows: int
    org: object
    owner: object
    stamp: str = field(default_factory=lambda: str(time.time_ns()))
    parents: dict[str, object] = field(default_factory=dict)  # the URL segment before an id -> that id
    specialists: list[object] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # a list's path -> its own caller's token
    expected: dict[str, int] = field(default_factory=dict)  # a list's path -> the rows it lists at least


def _bulk(model: type, objects: list[object]) -> list[object]:
    manager = getattr(model, "all_orgs", None) or model.objects
    return manager.bulk_create(objects, batch_size=BATCH)


def _top_up(model: type, rows: int, make: Callable[[str], object], fill: Fill, **scope: object) -> None:
    """A table of every org (rates, packages, the catalog): filled up to ``rows``, not past it, however
    many runs share the database."""
    missing = rows - model.objects.filter(**scope).count()
    if missing > 0:
        _bulk(model, [make(f"{fill.stamp}-{n}") for n in range(missing)])


def _specialists(fill: Fill) -> None:
    from specialists.models import Specialist

    made = _bulk(Specialist, [Specialist(organization=fill.org, name=f"S{n}", model="local") for n in range(fill.rows)])
    fill.specialists = made


def _sessions(fill: Fill) -> None:
    """One in two sessions in the bench workspace: ``/api/chat/sessions`` lists all of them, the
    workspace's threads half."""
    from chat.models import ChatSession

    specialists, workspace = fill.specialists, fill.parents["workspaces"]
    _bulk(
        ChatSession,
        [
            ChatSession(
                organization=fill.org,
                specialist=specialists[n % len(specialists)],
                created_by=fill.owner,
                title=f"{n}",
                workspace_id=workspace if n % 2 else None,
            )
            for n in range(fill.rows)
        ],
    )
    fill.expected["/workspaces/{id}/threads"] = fill.rows // 2


def _ledger(fill: Fill) -> None:
    from billing.models import LedgerEntry

    _bulk(
        LedgerEntry,
        [
            LedgerEntry(organization=fill.org, kind="grant", amount=Decimal(1), balance_after=Decimal(n + 1))
            for n in range(fill.rows)
        ],
    )


def _tasks(fill: Fill) -> None:
    from tasks.models import Task

    _bulk(Task, [Task(organization=fill.org, title=f"T{n}", created_by=fill.owner) for n in range(fill.rows)])


def _projects(fill: Fill) -> None:
    from tasks.models import Project

    _bulk(Project, [Project(organization=fill.org, name=f"P{n}", created_by=fill.owner) for n in range(fill.rows)])


def _orgs(fill: Fill) -> None:
    """A second user, member of ``rows`` orgs: the bench org's owner keeps one org (no ``X-Org-Id``)."""
    from accounts.models import User
    from accounts.services import issue_tokens
    from orgs.models import Membership, Organization

    member = User.objects.create_user(email=f"orgs-{fill.stamp}@example.com", password="x-Bench-pass-1")
    orgs = _bulk(Organization, [Organization(name=f"O{n}", slug=f"o-{fill.stamp}-{n}") for n in range(fill.rows)])
    _bulk(Membership, [Membership(organization=org, user=member, role="owner") for org in orgs])
    fill.tokens["/orgs"] = issue_tokens(user=member).access


def _users(fill: Fill) -> None:
    from accounts.models import User
    from orgs.models import Membership

    users = _bulk(User, [User(email=f"m{n}-{fill.stamp}@example.com", password="!") for n in range(fill.rows)])
    _bulk(Membership, [Membership(organization=fill.org, user=user, role="member") for user in users])


def _api_keys(fill: Fill) -> None:
    from orgs.models import ApiKey

    prefixes = list(dict.fromkeys(uuid.uuid4().hex[:8] for _ in range(fill.rows + 100)))[: fill.rows]
    manager = ApiKey.all_orgs
    manager.bulk_create(
        [
            ApiKey(
                organization=fill.org,
                name=f"k{n}",
                prefix=prefix,
                secret_hash="0" * 64,
                role="member",
                created_by=fill.owner,
            )
            for n, prefix in enumerate(prefixes)
        ],
        batch_size=BATCH,
        ignore_conflicts=True,  # a prefix another run drew: one key fewer
    )
    fill.expected["/orgs/{orgId}/api-keys"] = fill.rows - 100


def _model_rates(fill: Fill) -> None:
    from billing.models import ModelRate

    _top_up(
        ModelRate,
        fill.rows,
        lambda n: ModelRate(
            model=f"bench-{n}",
            provider="openai",
            display_name="Bench",
            input_credits_per_million=Decimal(1),
            output_credits_per_million=Decimal(2),
            context_window=1000,
            active=False,  # listed, never offered to a turn
        ),
        fill,
    )


def _packages(fill: Fill) -> None:
    from billing.models import CreditPackage

    def package(n: str) -> CreditPackage:
        return CreditPackage(name=f"Bench {n}", credits=Decimal(10), price_cents=100_000 + int(n.rsplit("-", 1)[1]))

    _top_up(CreditPackage, fill.rows, package, fill, active=True)


def _alerts(fill: Fill) -> None:
    from django.utils import timezone

    from billing.models import BudgetAlert

    now = timezone.now()
    _bulk(
        BudgetAlert,
        [
            BudgetAlert(organization=fill.org, kind="circuit_opened", period_start=now, message=f"m{n}")
            for n in range(fill.rows)
        ],
    )


def _catalog(fill: Fill) -> None:
    from mcps.models import CatalogEntry

    _top_up(
        CatalogEntry,
        fill.rows,
        lambda n: CatalogEntry(key=f"bench-{n}", name=f"Bench {n}", url_template="https://mcp.example.com/{n}"),
        fill,
    )


def _connections(fill: Fill) -> None:
    from mcps.models import Connection

    made = _bulk(
        Connection,
        [
            Connection(organization=fill.org, name=f"C{n}", url="http://127.0.0.1:9/mcp", transport="sse")
            for n in range(fill.rows)
        ],
    )
    fill.parents["mcps"] = made[0].pk


def _tools(fill: Fill) -> None:
    from mcps.models import Tool

    connection = fill.parents["mcps"]
    _bulk(
        Tool,
        [
            Tool(organization=fill.org, connection_id=connection, name=f"tool_{n}", input_schema={"type": "object"})
            for n in range(fill.rows)
        ],
    )


def _webhooks(fill: Fill) -> None:
    from core.crypto import encrypt_json
    from webhooks.models import Webhook

    secret = encrypt_json({"secret": "whsec_bench"})
    made = _bulk(
        Webhook,
        [
            Webhook(
                organization=fill.org,
                url=f"https://hooks.example.com/{n}",
                events=["alert.raised"],
                secret_encrypted=secret,
                created_by=fill.owner,
            )
            for n in range(fill.rows)
        ],
    )
    fill.parents["webhooks"] = made[0].pk


def _deliveries(fill: Fill) -> None:
    from django.utils import timezone

    from webhooks.models import Delivery, Event

    now = timezone.now()
    events = _bulk(Event, [Event(organization=fill.org, type="ping", body="{}") for _ in range(fill.rows)])
    _bulk(
        Delivery,
        [
            Delivery(organization=fill.org, webhook_id=fill.parents["webhooks"], event=event, due_at=now)
            for event in events
        ],
    )


def _workspaces(fill: Fill) -> None:
    from workspaces.models import Workspace

    made = _bulk(
        Workspace, [Workspace(organization=fill.org, name=f"W{n}", created_by=fill.owner) for n in range(fill.rows)]
    )
    fill.parents["workspaces"] = made[0].pk


def _artifacts(fill: Fill) -> None:
    from chat.models import Artifact

    _bulk(
        Artifact,
        [
            Artifact(organization=fill.org, workspace_id=fill.parents["workspaces"], title=f"A{n}", content="c")
            for n in range(fill.rows)
        ],
    )


def _files(fill: Fill) -> None:
    from workspaces.models import WorkspaceFile

    _bulk(
        WorkspaceFile,
        [
            WorkspaceFile(
                organization=fill.org,
                workspace_id=fill.parents["workspaces"],
                filename=f"f{n}.txt",
                content_type="text/plain",
                size=1,
                uploaded_by=fill.owner,
                file=f"bench/f{n}.txt",
            )
            for n in range(fill.rows)
        ],
    )


# every list endpoint -> its filler, in the order they run (a parent before its children)
FILLERS: dict[str, Callable[[Fill], None]] = {
    "/workspaces": _workspaces,
    "/specialists": _specialists,
    "/api/chat/sessions": _sessions,
    "/workspaces/{id}/threads": lambda fill: None,  # half of the sessions above
    "/workspaces/{id}/artifacts": _artifacts,
    "/workspaces/{id}/files": _files,
    "/billing/credits/usage": _ledger,
    "/tasks": _tasks,
    "/projects": _projects,
    "/orgs": _orgs,
    "/users": _users,
    "/orgs/{orgId}/api-keys": _api_keys,
    "/billing/model-rates": _model_rates,
    "/billing/packages": _packages,
    "/billing/alerts": _alerts,
    "/mcp/catalog": _catalog,
    "/orgs/{orgId}/mcps": _connections,
    "/orgs/{orgId}/mcps/{id}/tools": _tools,
    "/orgs/{orgId}/webhooks": _webhooks,
    "/orgs/{orgId}/webhooks/{id}/deliveries": _deliveries,
}


def missing_fillers(paths: list[str]) -> list[str]:
    """The list endpoints no filler fills (the bench refuses to start), and fillers of gone endpoints."""
    return sorted(set(paths) ^ set(FILLERS))

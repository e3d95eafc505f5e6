"""Tenancy below the view, walked: a second organization ("foreign") gets one real object of every
org-owned model, and an admin (or owner) of the first organization ("home") walks every id route and
every id field of every request body with those real foreign ids. Path ids are 404 ``not_found``
(403 ``not_a_member`` for the foreign org in ``X-Org-Id``), body ids 400 ``validation_error`` naming
the field; never a 2xx, never the foreign org's data, never a change to anything.

The route → model table, the write bodies and the body id cases are checked against the URLconf and
the OpenAPI schema: a new id route, write operation or body id field that this walk does not cover
fails a test here. The same requests with the home org's own ids get through (the positive control),
so every 404 and 400 below is the tenancy check's, not a malformed request's."""

from __future__ import annotations

import functools
import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, models, transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern
from django.utils import timezone

from accounts.models import OneTimeToken, User
from billing import services as billing
from billing.models import BudgetAlert, DailyUsage, PayerSpend
from chat import services as chat_services
from chat import turns
from chat.artifacts import save_artifact
from chat.calls import TurnEvent
from chat.models import Attachment, ChatSession, Message
from chat.replay import TurnLog
from core.credits import period_bounds
from core.crypto import encrypt_json
from mcps.models import Connection, Tool
from orgs import services as org_services
from orgs.api_keys import create_api_key
from orgs.context import OrgContext
from orgs.models import ApiKey, AuditEntry, Membership, Organization, Role
from specialists import services as specialist_services
from specialists.models import Specialist
from tasks import services as task_services
from tasks.models import Project, Task
from tests.conftest import add_member, client_for, make_org, make_user
from webhooks import services as webhook_services
from webhooks.models import Webhook
from workspaces import services as workspace_services
from workspaces.models import Workspace, WorkspaceFile

pytestmark = pytest.mark.django_db

UNREACHABLE_MCP = "http://127.0.0.1:9/mcp"  # a leaked sync fails fast (connection refused), never hangs


# --- the organizations ------------------------------------------------------------------------------


def org_owned_models() -> list[type[models.Model]]:
    """Every model with a path to an organization: an ``organization`` field, or a queryset that
    reads by org (``for_org``: the chat message through its session, an invitation through its
    membership)."""
    owned = []
    for model in apps.get_models():
        if model.__module__.split(".")[0] in {"django", "rest_framework_simplejwt", "django_tasks_db"}:
            continue
        if "organization" in {f.name for f in model._meta.get_fields()} or hasattr(model._default_manager, "for_org"):
            owned.append(model)
    return owned


@dataclass
class World:
    """One organization with one real object of every org-owned model (and of its people)."""

    org: Organization
    owner: User
    admin: User
    member: User
    invited: User
    marker: str  # in every name, title, content and email of this org: its data is findable in a body
    connection: Connection
    tool: Tool
    specialist: Specialist
    workspace: Workspace
    workspace_file: WorkspaceFile
    attachment: Attachment
    session: ChatSession
    turn: Message  # the session's assistant message, its events kept for replay
    project: Project
    task: Task  # assigned to the specialist: it can be run
    plain_task: Task  # no assignee: any assignee may be set on it
    alert: BudgetAlert
    api_key: ApiKey
    webhook: Webhook  # with deliveries of its events: a ping and the circuit's changes

    @property
    def users(self) -> list[User]:
        return [self.owner, self.admin, self.member, self.invited]

    def objects(self, model: type[models.Model]) -> list[models.Model]:
        """The org's objects of one kind, as an id in a path or a body would name them."""
        if model is Organization:
            return [self.org]
        if model is User:
            return self.users
        return list(model._default_manager.for_org(self.org).order_by("pk"))

    def own(self, model: type[models.Model]) -> models.Model:
        """The one object of a kind that a home-org request names (the positive control's)."""
        chosen = {
            Organization: self.org,
            User: self.member,
            Connection: self.connection,
            Tool: self.tool,
            Specialist: self.specialist,
            Workspace: self.workspace,
            WorkspaceFile: self.workspace_file,
            Attachment: self.attachment,
            ChatSession: self.session,
            Message: self.turn,
            Project: self.project,
            Task: self.task,
            BudgetAlert: self.alert,
            ApiKey: self.api_key,
            Webhook: self.webhook,
        }
        return chosen[model]

    @functools.cached_property
    def ids(self) -> set[str]:
        """The id of every row this org owns (and of its people), as built."""
        found = {str(self.org.pk), *(str(user.pk) for user in self.users)}
        for model in org_owned_models():
            found |= {str(pk) for pk in model._default_manager.for_org(self.org).values_list("pk", flat=True)}
        return found


async def _keep_events(message_id: uuid.UUID) -> None:
    """The turn's events as its run would have kept them (its start, its end): a resume reads them."""
    log = TurnLog(message_id=message_id, group="")
    log.record(TurnEvent("session", {"messageId": str(message_id)}))
    log.record(TurnEvent("done", {"messageId": str(message_id), "finishReason": "stop"}))
    await log.flush()


def _upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), "text/plain")


def build_world(label: str) -> World:
    """Made the way the product makes them: its services where there is one, else the managers."""
    marker = f"{label}{uuid.uuid4().hex[:12]}"
    owner = make_user(email=f"{marker}-owner@example.com", name=f"{marker} owner")
    org = make_org(owner=owner, name=f"{marker} Org")
    admin = add_member(org, make_user(email=f"{marker}-admin@example.com", name=f"{marker} admin"), role=Role.ADMIN)
    member = add_member(org, make_user(email=f"{marker}-member@example.com", name=f"{marker} member"))
    context = OrgContext(org=org, membership=Membership.all_orgs.get(organization=org, user=owner), is_staff=False)
    invitation, _ = org_services.invite_member(
        context=context, inviter=owner, email=f"{marker}-invited@example.com", role=Role.MEMBER, name=f"{marker} inv"
    )
    connection = Connection.all_orgs.create(
        organization=org, name=f"{marker} connection", url=UNREACHABLE_MCP, status=Connection.Status.CONNECTED
    )
    tool = Tool.all_orgs.create(
        organization=org,
        connection=connection,
        name=f"{marker}_lookup",
        description=f"{marker} tool",
        input_schema={"type": "object", "properties": {}},
    )
    specialist = specialist_services.create_specialist(
        org=org,
        created_by=owner,
        data={
            "name": f"{marker} specialist",
            "title": f"{marker} title",
            "instructions": f"{marker} instructions",
            "model": "local",
            "max_output_tokens": 200,
            "tools": [tool],
        },
    )
    workspace = workspace_services.create_workspace(
        org=org, created_by=owner, name=f"{marker} workspace", description=f"{marker} description"
    )
    workspace_file = workspace_services.add_file(
        context=context, workspace=workspace, upload=_upload("notes.txt", f"{marker} workspace file")
    )
    attachment = chat_services.attach_upload(
        context=context, upload=_upload("brief.txt", f"{marker} attachment"), session=None
    )
    turn = turns.start_turn(  # the session, both messages (the attachment on the first) and a hold
        context=context,
        specialist_id=specialist.pk,
        message=f"{marker} message",
        workspace_id=workspace.pk,
        attachment_ids=[attachment.pk],
        queued=True,
    )
    session = ChatSession.all_orgs.get(pk=turn.session_id)
    async_to_sync(_keep_events)(turn.message_id)
    chat_services.attach_upload(context=context, upload=_upload("later.txt", f"{marker} later"), session=session)
    save_artifact(
        org_id=org.pk,
        workspace_id=workspace.pk,
        session_id=session.pk,
        specialist_id=specialist.pk,
        title=f"{marker} artifact",
        content=f"{marker} artifact content",
    )
    project = task_services.create_project(
        org=org, created_by=owner, data={"name": f"{marker} project", "description": marker, "workspace": workspace}
    )
    task = task_services.create_task(
        org=org,
        created_by=owner,
        data={"title": f"{marker} task", "project": project, "assignee_specialist": specialist},
    )
    plain_task = task_services.create_task(
        org=org, created_by=owner, data={"title": f"{marker} plain", "project": project}
    )
    PayerSpend.all_orgs.create(  # what a capped member spent this period (kept by settlements)
        organization=org,
        payer=PayerSpend.Payer.MEMBER,
        payer_id=owner.pk,
        period_start=period_bounds(timezone.now())[0],
        spent=Decimal("0.5"),
    )
    DailyUsage.all_orgs.create(  # a day of usage counted for the admin's organization page
        organization=org, day=timezone.now().date(), model="local", credits=Decimal("0.5"), entries=1
    )
    webhook = Webhook.all_orgs.create(  # (as the connection: its URL would not pass the guard here)
        organization=org,
        url=UNREACHABLE_MCP,
        events=["circuit.changed", "credits.granted"],
        secret_encrypted=encrypt_json({"secret": f"whsec_{marker}"}),
    )
    webhook_services.send_ping(context=context, webhook=webhook)  # an event and its delivery
    hold = billing.reserve(org=org, model="local", input_tokens=10, max_output_tokens=20)
    billing.settle(reservation_id=hold.reservation_id, input_tokens=10, output_tokens=20, description=f"{marker} use")
    billing.set_circuit(org=org, actor=owner, state="open", reason=f"{marker} audit")  # an event and an alert
    billing.set_circuit(org=org, actor=owner, state="closed", reason=f"{marker} done")  # spending goes on
    AuditEntry.all_orgs.create(actor=owner, organization=org, action="grant", object_repr=f"{marker} audit entry")
    return World(
        org=org,
        owner=owner,
        admin=admin,
        member=member,
        invited=invitation.user,
        marker=marker.lower(),
        connection=connection,
        tool=tool,
        specialist=specialist,
        workspace=workspace,
        workspace_file=workspace_file,
        attachment=attachment,
        session=session,
        turn=Message.objects.for_org(org).get(pk=turn.message_id),
        project=project,
        task=task,
        plain_task=plain_task,
        alert=BudgetAlert.all_orgs.for_org(org).get(),
        api_key=create_api_key(context=context, name=f"{marker} key").key,
        webhook=webhook,
    )


@pytest.fixture
def lenient(settings):
    """No throttle gets in the walk's way; an MCP URL on loopback is allowed (so that a leaked write
    of a connection would go all the way)."""
    settings.THROTTLE_RATES = {
        **settings.THROTTLE_RATES,
        "chat": "100000/min",
        "chat_org": "100000/min",
        "upload": "100000/min",
    }
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def home(lenient) -> World:
    return build_world("home")


@pytest.fixture
def foreign(home) -> World:
    return build_world("foreign")


# --- what must not change -----------------------------------------------------------------------------


Rows = dict[str, tuple[tuple[str, Any], ...]]  # a row's id → its (field, value) pairs


def _rows(queryset: models.QuerySet) -> Rows:
    return {str(row["id"]): tuple(sorted(row.items())) for row in queryset.values()}


def _stored_bytes(file) -> bytes | None:
    if not file.storage.exists(file.name):
        return None
    with file.storage.open(file.name) as handle:
        return handle.read()


def snapshot() -> dict[str, Rows]:
    """Every row of every org-owned model, of the organizations, of their people, their one-time
    tokens and the many-to-many links, and every stored file's bytes (all orgs: a refused request
    changes nothing anywhere)."""
    rows: dict[str, Rows] = {}
    for model in org_owned_models():
        rows[model._meta.label] = _rows(model._default_manager.all())
    rows["orgs.Organization"] = _rows(Organization.objects.all())
    rows["accounts.User"] = _rows(User.objects.all())
    rows["accounts.OneTimeToken"] = _rows(OneTimeToken.objects.all())
    rows["specialists.Specialist.tools"] = _rows(Specialist.tools.through.objects.all())
    rows["chat.Message.attachments"] = _rows(Message.attachments.through.objects.all())
    stored: Rows = {}
    for model in (WorkspaceFile, Attachment):
        for item in model.all_orgs.all():
            stored[str(item.pk)] = (("name", item.file.name), ("bytes", _stored_bytes(item.file)))
    rows["stored files"] = stored
    return rows


def counts_of(world: World) -> dict[str, int]:
    return {model._meta.label: model._default_manager.for_org(world.org).count() for model in org_owned_models()} | {
        "members": Membership.all_orgs.for_org(world.org).count(),
        "one-time tokens": OneTimeToken.objects.filter(user__memberships__organization=world.org).count(),
    }


def changes(before: dict[str, Rows], after: dict[str, Rows]) -> dict[str, list[str]]:
    """What differs, row by row: the rows gone, the rows new, the fields changed."""
    found = {}
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, {}), after.get(key, {})
        if old == new:
            continue
        lines = [f"gone {old[pk]}" for pk in old.keys() - new.keys()]
        lines += [f"new {new[pk]}" for pk in new.keys() - old.keys()]
        for pk in old.keys() & new.keys():
            if old[pk] != new[pk]:
                diff = [f"{a[0]}: {a[1]!r} → {b[1]!r}" for a, b in zip(old[pk], new[pk], strict=True) if a != b]
                lines.append(f"changed {pk}: {'; '.join(diff)}")
        found[key] = lines
    return found


def _rows_written() -> int | None:
    """How many rows this transaction has inserted, updated or deleted so far (PostgreSQL's own
    count; None elsewhere)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables")
        return cursor.fetchone()[0]


class Watch:
    """What each request changed: the database's count of rows written says whether to look (a
    refused request may write and roll back), the snapshot says what."""

    def __init__(self) -> None:
        self.rows, self.written = snapshot(), _rows_written()

    def changed(self) -> dict[str, list[str]]:
        written = _rows_written()
        if written is not None and written == self.written:
            return {}
        after = snapshot()
        found = changes(self.rows, after)
        self.rows, self.written = after, _rows_written()
        return found


def leaked_data(response, foreign: World, sent: set[str]) -> list[str]:
    """What of the foreign org a response shows: its marker (names, titles, contents, emails) or the
    id of any of its rows other than those the request itself named."""
    content = getattr(response, "content", b"") if not getattr(response, "streaming", False) else b""
    text = content.decode(errors="replace").lower()
    found = [foreign.marker] if foreign.marker in text else []
    found += sorted(pk for pk in foreign.ids - sent if pk in text)
    return found


def assert_clean(**found: list) -> None:
    """One failure that lists everything the walk found: wrong answers, foreign data, changes."""
    report = [f"{kind}:\n  " + "\n  ".join(map(str, items)) for kind, items in found.items() if items]
    assert not report, "\n".join(report)


async def _drain(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


# --- routes ---------------------------------------------------------------------------------------


PARAM = re.compile(r"<(?:\w+:)?(\w+)>")

# Each id route, and the model each of its path ids names.
ROUTE_IDS: dict[str, dict[str, type[models.Model]]] = {
    "orgs/<uuid:pk>": {"pk": Organization},
    "orgs/<uuid:pk>/billing-email": {"pk": Organization},
    "users/<uuid:pk>": {"pk": User},
    "users/<uuid:pk>/role": {"pk": User},
    "users/<uuid:pk>/quota": {"pk": User},
    "specialists/<uuid:pk>": {"pk": Specialist},
    "api/chat/sessions/<uuid:pk>": {"pk": ChatSession},
    "api/chat/messages/<uuid:message_id>/events": {"message_id": Message},
    "workspaces/<uuid:pk>/threads": {"pk": Workspace},
    "orgs/<uuid:org_id>/mcps": {"org_id": Organization},
    "orgs/<uuid:org_id>/api-keys": {"org_id": Organization},
    "orgs/<uuid:org_id>/api-keys/<uuid:pk>": {"org_id": Organization, "pk": ApiKey},
    "orgs/<uuid:org_id>/mcps/<uuid:pk>": {"org_id": Organization, "pk": Connection},
    "orgs/<uuid:org_id>/webhooks": {"org_id": Organization},
    "orgs/<uuid:org_id>/webhooks/<uuid:pk>": {"org_id": Organization, "pk": Webhook},
    "orgs/<uuid:org_id>/webhooks/<uuid:pk>/deliveries": {"org_id": Organization, "pk": Webhook},
    "orgs/<uuid:org_id>/webhooks/<uuid:pk>/test": {"org_id": Organization, "pk": Webhook},
    "orgs/<uuid:org_id>/mcps/<uuid:pk>/sync": {"org_id": Organization, "pk": Connection},
    "orgs/<uuid:org_id>/mcps/<uuid:pk>/tools": {"org_id": Organization, "pk": Connection},
    "orgs/<uuid:org_id>/mcps/<uuid:pk>/tools/<uuid:tool_id>": {
        "org_id": Organization,
        "pk": Connection,
        "tool_id": Tool,
    },
    "workspaces/<uuid:pk>": {"pk": Workspace},
    "workspaces/<uuid:pk>/artifacts": {"pk": Workspace},
    "workspaces/<uuid:pk>/files": {"pk": Workspace},
    "workspaces/<uuid:pk>/files/<uuid:file_id>": {"pk": Workspace, "file_id": WorkspaceFile},
    "projects/<uuid:pk>": {"pk": Project},
    "tasks/<uuid:pk>": {"pk": Task},
    "tasks/<uuid:pk>/run": {"pk": Task},
}
# Path parameters that are no ids: the catch-all 404's rest of the path.
NOT_IDS = {"rest"}
# Routes whose view reads another model than the one its ``pk`` names.
PK_IS_NOT_THE_QUERYSET_MODEL = {  # the workspace's chat sessions and artifacts, served by chat
    "workspaces/<uuid:pk>/threads",
    "workspaces/<uuid:pk>/artifacts",
}

# A valid body for every write on an id route: a 404 must come from the lookup, not the body.
WRITE_BODIES: dict[tuple[str, str], Callable[[World], dict]] = {
    ("orgs/<uuid:pk>", "put"): lambda w: {"name": "Taken over", "monthlyBudget": "1.000000"},
    ("orgs/<uuid:pk>/billing-email", "patch"): lambda w: {"billingEmail": "taken@example.com"},
    ("users/<uuid:pk>", "put"): lambda w: {"name": "Taken over"},
    ("users/<uuid:pk>/role", "patch"): lambda w: {"role": "admin"},
    ("users/<uuid:pk>/quota", "patch"): lambda w: {"monthlyCreditLimit": "1.000000"},
    ("specialists/<uuid:pk>", "put"): lambda w: {"name": "Taken over", "model": "local", "status": "paused"},
    ("orgs/<uuid:org_id>/api-keys", "post"): lambda w: {"name": "Taken", "role": "admin"},
    ("orgs/<uuid:org_id>/mcps", "post"): lambda w: {"name": "Taken", "url": UNREACHABLE_MCP, "transport": "sse"},
    ("orgs/<uuid:org_id>/mcps/<uuid:pk>", "put"): lambda w: {"name": "Taken over", "enabled": False},
    ("orgs/<uuid:org_id>/mcps/<uuid:pk>/sync", "post"): lambda w: {},
    ("orgs/<uuid:org_id>/webhooks", "post"): lambda w: {"url": UNREACHABLE_MCP, "events": ["alert.raised"]},
    ("orgs/<uuid:org_id>/webhooks/<uuid:pk>", "put"): lambda w: {"url": f"{UNREACHABLE_MCP}?moved", "enabled": False},
    ("orgs/<uuid:org_id>/webhooks/<uuid:pk>/test", "post"): lambda w: {},
    ("orgs/<uuid:org_id>/mcps/<uuid:pk>/tools/<uuid:tool_id>", "patch"): lambda w: {"enabled": False},
    ("workspaces/<uuid:pk>", "put"): lambda w: {"name": "Taken over"},
    ("workspaces/<uuid:pk>/files", "post"): lambda w: {"file": _upload("planted.txt", "planted")},
    ("projects/<uuid:pk>", "put"): lambda w: {"name": "Taken over", "status": "archived"},
    ("tasks/<uuid:pk>", "put"): lambda w: {"title": "Taken over", "status": "cancelled"},
    ("tasks/<uuid:pk>/run", "post"): lambda w: {},
}
MULTIPART = {("workspaces/<uuid:pk>/files", "post")}


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback, entry.pattern


def _view_class(callback) -> type | None:
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def _methods(callback) -> list[str]:
    """The methods a route serves, without HEAD (DRF adds it to a viewset's actions once served)."""
    if hasattr(callback, "actions"):
        return sorted(set(callback.actions) - {"head"})
    view_class = _view_class(callback)
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]


def _params(route: str, pattern) -> list[str]:
    if isinstance(pattern, RoutePattern):
        return PARAM.findall(route)
    return list(pattern.regex.groupindex)


@functools.cache
def id_routes() -> tuple[tuple[str, Any], ...]:
    """Every route with a path id (each once: the trailing-slash twin serves the same view)."""
    found = []
    for route, callback, pattern in _walk(get_resolver().url_patterns):
        if route.startswith("admin") or route.endswith("/"):
            continue
        if [p for p in _params(route, pattern) if p not in NOT_IDS]:
            found.append((route, callback))
    return tuple(found)


def _derived_model(route: str, callback, kwarg: str) -> type | None:
    """The model a path id names, as far as the view tells it: the org of an org-path view, else the
    model of the view's queryset for its ``pk``."""
    view = _view_class(callback)
    if kwarg == getattr(view, "org_path_kwarg", None):
        return Organization
    queryset = getattr(view, "queryset", None)
    if kwarg == "pk" and queryset is not None and route not in PK_IS_NOT_THE_QUERYSET_MODEL:
        return queryset.model
    return None


def test_every_id_route_is_mapped_to_the_models_its_ids_name():
    seen = {}
    for route, _callback, pattern in _walk(get_resolver().url_patterns):
        if route.startswith("admin") or route.endswith("/"):
            continue
        ids = [p for p in _params(route, pattern) if p not in NOT_IDS]
        if ids:
            seen[route] = ids
    unmapped = sorted(route for route, ids in seen.items() if set(ids) != set(ROUTE_IDS.get(route, {})))
    assert unmapped == [], f"id routes this walk does not cover (add them to ROUTE_IDS): {unmapped}"
    assert sorted(ROUTE_IDS) == sorted(seen), "ROUTE_IDS names routes that are gone"
    wrong = []
    for route, callback in id_routes():
        for kwarg, model in ROUTE_IDS[route].items():
            derived = _derived_model(route, callback, kwarg)
            if derived is not None and derived is not model:
                wrong.append((route, kwarg, model.__name__, derived.__name__))
    assert wrong == [], f"the table and the views disagree: {wrong}"
    writes = {
        (route, m) for route, callback in id_routes() for m in _methods(callback) if m in ("post", "put", "patch")
    }
    assert writes == set(WRITE_BODIES), f"writes on id routes without a body here: {writes - set(WRITE_BODIES)}"


def test_every_websocket_route_is_mapped():
    from leancore.routing import websocket_urlpatterns

    assert [list(p.pattern.regex.groupindex) for p in websocket_urlpatterns] == [["session_id"]]


def test_the_world_has_an_object_of_every_org_owned_model(home, foreign):
    missing = [label for label, count in counts_of(foreign).items() if count == 0]
    assert missing == [], f"no foreign object of: {missing} (give build_world one)"
    assert len(org_owned_models()) >= 19
    assert not Membership.all_orgs.filter(organization=foreign.org, user__in=home.users).exists()


# --- the path walk -----------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    route: str
    path: str
    what: str  # which ids are whose
    sent: set[str] = field(default_factory=set)
    headers: dict[str, str] = field(default_factory=dict)


def _fill(route: str, ids: dict[str, models.Model]) -> str:
    return "/" + PARAM.sub(lambda m: str(ids[m.group(1)].pk), route)


def path_calls(home: World, foreign: World) -> Iterator[Call]:
    """Every method of every id route, with every combination of foreign and own ids in which at
    least one id is the foreign org's (every foreign object of the kind); then the all-foreign
    combination with the foreign org in ``X-Org-Id``."""
    for route, callback in id_routes():
        kwargs = ROUTE_IDS[route]
        choices = []
        for kwarg, model in kwargs.items():
            options = [("foreign", obj) for obj in foreign.objects(model)]
            if len(kwargs) > 1:  # a foreign id under an own parent (or the other way round)
                options.append(("own", home.own(model)))
            choices.append([(kwarg, whose, obj) for whose, obj in options])
        view = _view_class(callback)
        for method in [*_methods(callback), "head", "options"]:
            if method == "head" and "get" not in _methods(callback):
                continue
            for combo in itertools.product(*choices):
                if all(whose == "own" for _, whose, _ in combo):
                    continue
                ids = {kwarg: obj for kwarg, _, obj in combo}
                what = ", ".join(f"{kwarg}={whose} {type(obj).__name__}" for kwarg, whose, obj in combo)
                sent = {str(obj.pk) for obj in ids.values()}
                yield Call(method, route, _fill(route, ids), what, sent)
            if not getattr(view, "org_path_kwarg", None):
                ids = {kwarg: foreign.objects(model)[0] for kwarg, model in kwargs.items()}
                sent = {str(obj.pk) for obj in ids.values()} | {str(foreign.org.pk)}
                header = {"HTTP_X_ORG_ID": str(foreign.org.pk)}
                yield Call(method, route, _fill(route, ids), "all foreign, X-Org-Id foreign", sent, header)


def _request(client, call: Call, home: World):
    body = WRITE_BODIES.get((call.route, call.method))
    if body is None:
        return getattr(client, call.method)(call.path, **call.headers)
    fmt = "multipart" if (call.route, call.method) in MULTIPART else "json"
    return getattr(client, call.method)(call.path, body(home), format=fmt, **call.headers)


def _problem_code(response) -> str | None:
    if not response.get("Content-Type", "").startswith("application/problem+json") or not response.content:
        return None
    return response.json().get("code")


def _expected(call: Call) -> tuple[int, str]:
    return (403, "not_a_member") if call.headers else (404, "not_found")


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_foreign_ids_in_paths_find_nothing_and_change_nothing(role, home, foreign):
    caller = getattr(home, role)
    client = client_for(caller, home.org)
    before_counts, before = counts_of(foreign), snapshot()
    watch = Watch()
    wrong, leaks, changed, walked = [], [], [], set()
    # deletes last: a delete that got through must not hide what the other methods would show
    calls = sorted(path_calls(home, foreign), key=lambda call: call.method == "delete")
    for call in calls:
        response = _request(client, call, home)
        walked.add((call.route, call.method))
        status, code = _expected(call)
        if call.method == "options":  # what the endpoint accepts; no object is read
            ok = response.status_code in (200, status) and response.status_code < 500
        elif call.method == "head":
            ok = response.status_code == status
        else:
            ok = response.status_code == status and _problem_code(response) == code
        if not ok:
            wrong.append(
                (call.method.upper(), call.path, call.route, call.what, response.status_code, _problem_code(response))
            )
        shown = leaked_data(response, foreign, call.sent)
        if shown:
            leaks.append((call.method.upper(), call.route, call.what, response.status_code, shown[:3]))
        diff = watch.changed()
        if diff:
            changed.append((call.method.upper(), call.route, call.what, response.status_code, diff))
    assert len(walked) >= 60, walked  # route × method pairs, HEAD and OPTIONS included
    assert len(calls) >= 150
    assert_clean(wrong=wrong, leaks=leaks, changed=changed)
    assert counts_of(foreign) == before_counts
    assert changes(before, snapshot()) == {}


def test_the_same_path_requests_with_own_ids_get_through(home, foreign):
    """The positive control: with the home org's ids the walk's requests are served (each rolled
    back), so the 404s above are the tenancy check's and the bodies are valid."""
    client = client_for(home.admin, home.org)
    refused = []
    served = 0
    for route, callback in id_routes():
        ids = {kwarg: home.own(model) for kwarg, model in ROUTE_IDS[route].items()}
        for method in _methods(callback):
            call = Call(method, route, _fill(route, ids), "own")
            with transaction.atomic():
                response = _request(client, call, home)
                transaction.set_rollback(True)
            served += 1
            unreachable = route.endswith("/sync") and response.status_code == 502  # the server is not there
            if not (200 <= response.status_code < 300 or unreachable):
                refused.append((method.upper(), route, response.status_code, response.content[:200]))
            found = leaked_data(response, foreign, set())
            assert found == [], (method, route, found)
    assert served >= 30
    assert refused == [], "\n".join(map(str, refused))


# --- request bodies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyCase:
    path: str  # as in the schema
    method: str
    field: str
    model: type[models.Model]
    build: Callable[[World, Any], dict]  # (home, the id value) → the body
    many: bool = False
    multipart: bool = False
    route_model: type[models.Model] | None = None  # the model of the path's {id}: the home org's


def _send(home: World, **extra: Any) -> dict:
    return {"specialistId": str(home.specialist.pk), "message": "Hello", **extra}


def _chat_cases(path: str) -> list[BodyCase]:
    return [
        BodyCase(path, "post", "specialistId", Specialist, lambda h, v: {**_send(h), "specialistId": v}),
        BodyCase(path, "post", "sessionId", ChatSession, lambda h, v: _send(h, sessionId=v)),
        BodyCase(path, "post", "workspaceId", Workspace, lambda h, v: _send(h, workspaceId=v)),
        BodyCase(path, "post", "attachmentIds", Attachment, lambda h, v: _send(h, attachmentIds=v), many=True),
    ]


def _task_cases(path: str, method: str, route_model: type | None) -> list[BodyCase]:
    return [
        BodyCase(
            path, method, "projectId", Project, lambda h, v: {"title": "T", "projectId": v}, route_model=route_model
        ),
        BodyCase(
            path,
            method,
            "assigneeUserId",
            User,
            lambda h, v: {"title": "T", "assigneeUserId": v},
            route_model=route_model,
        ),
        BodyCase(
            path,
            method,
            "assigneeSpecialistId",
            Specialist,
            lambda h, v: {"title": "T", "assigneeSpecialistId": v},
            route_model=route_model,
        ),
    ]


BODY_CASES: list[BodyCase] = [
    BodyCase(
        "/specialists", "post", "toolIds", Tool, lambda h, v: {"name": "S", "model": "local", "toolIds": v}, many=True
    ),
    BodyCase(
        "/specialists/{id}", "put", "toolIds", Tool, lambda h, v: {"toolIds": v}, many=True, route_model=Specialist
    ),
    *_chat_cases("/api/chat/stream"),
    *_chat_cases("/api/chat/async"),
    BodyCase(
        "/api/chat/upload",
        "post",
        "sessionId",
        ChatSession,
        lambda h, v: {"file": _upload("up.txt", "uploaded"), "sessionId": v},
        multipart=True,
    ),
    BodyCase("/billing/alerts/acknowledge", "post", "alertIds", BudgetAlert, lambda h, v: {"alertIds": v}, many=True),
    BodyCase("/projects", "post", "workspaceId", Workspace, lambda h, v: {"name": "P", "workspaceId": v}),
    BodyCase("/projects/{id}", "put", "workspaceId", Workspace, lambda h, v: {"workspaceId": v}, route_model=Project),
    *_task_cases("/tasks", "post", None),
    *_task_cases("/tasks/{id}", "put", Task),
    BodyCase(
        "/orgs/{orgId}/api-keys",
        "post",
        "specialistIds",
        Specialist,
        lambda h, v: {"name": "K", "specialistIds": v},
        many=True,
    ),
]
# Body ids that name no org-owned object: credit packages are the platform's (and a grant is staff's).
NOT_ORG_OWNED_BODY_IDS = {("/billing/credits/grant", "post", "packageId")}


@functools.cache
def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def schema_body_ids() -> set[tuple[str, str, str]]:
    """Every writable request-body field of the schema named ``…Id`` or ``…Ids``."""
    schema = _schema()
    components = schema["components"]["schemas"]

    def resolve(node: dict) -> dict:
        return components[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node

    found = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                for name, prop in resolve(content["schema"]).get("properties", {}).items():
                    if re.search(r"Ids?$", name) and not resolve(prop).get("readOnly"):
                        found.add((path, method, name))
    return found


def test_every_request_body_id_field_is_walked():
    walked = {(case.path, case.method, case.field) for case in BODY_CASES}
    assert walked | NOT_ORG_OWNED_BODY_IDS == schema_body_ids()


def _values(case: BodyCase, home: World, foreign: World) -> Iterator[tuple[str, Any, set[str]]]:
    """The foreign ids to put in the field: each foreign object of the kind; for a list, alone and
    after an own id."""
    for obj in foreign.objects(case.model):
        if case.many:
            yield f"[foreign {case.model.__name__}]", [str(obj.pk)], {str(obj.pk)}
            yield f"[own, foreign {case.model.__name__}]", [str(home.own(case.model).pk), str(obj.pk)], {str(obj.pk)}
        else:
            yield f"foreign {case.model.__name__}", str(obj.pk), {str(obj.pk)}


def _body_request(client, case: BodyCase, home: World, value: Any):
    path = case.path.replace("{id}", str(home.own(case.route_model).pk)) if case.route_model else case.path
    path = path.replace("{orgId}", str(home.org.pk))
    fmt = "multipart" if case.multipart else "json"
    # the stream answers errors before its first byte as problems; ask for JSON all the same
    return getattr(client, case.method)(path, case.build(home, value), format=fmt, HTTP_ACCEPT="application/json")


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_foreign_ids_in_request_bodies_are_refused_naming_the_field(role, home, foreign):
    client = client_for(getattr(home, role), home.org)
    before_counts, before = counts_of(foreign), snapshot()
    watch = Watch()
    wrong, leaks, changed = [], [], []
    walked = 0
    for case in BODY_CASES:
        for what, value, sent in _values(case, home, foreign):
            walked += 1
            response = _body_request(client, case, home, value)
            errors = response.json().get("errors", {}) if _problem_code(response) else {}
            if not (
                response.status_code == 400 and _problem_code(response) == "validation_error" and case.field in errors
            ):
                body = b"<stream>" if getattr(response, "streaming", False) else response.content[:300]
                wrong.append((case.method.upper(), case.path, case.field, what, response.status_code, body))
            shown = leaked_data(response, foreign, sent)
            if shown:
                leaks.append((case.method.upper(), case.path, case.field, what, shown[:3]))
            diff = watch.changed()
            if diff:
                changed.append((case.method.upper(), case.path, case.field, what, diff))
    assert walked >= 30
    assert_clean(wrong=wrong, leaks=leaks, changed=changed)
    assert counts_of(foreign) == before_counts
    assert changes(before, snapshot()) == {}


def test_the_same_bodies_with_own_ids_get_through(home, foreign):
    """The positive control of the body walk: the home org's id in the same field is served."""
    client = client_for(home.admin, home.org)
    refused = []
    for case in BODY_CASES:
        own = str(home.own(case.model).pk)
        with transaction.atomic():
            response = _body_request(client, case, home, [own] if case.many else own)
            if getattr(response, "streaming", False):
                async_to_sync(_drain)(response)  # the turn runs to its end inside the rollback
            transaction.set_rollback(True)
        if not 200 <= response.status_code < 300:
            refused.append((case.method.upper(), case.path, case.field, response.status_code, response.content[:300]))
    assert refused == [], "\n".join(map(str, refused))


# --- query filters -------------------------------------------------------------------------------------


def schema_query_ids() -> list[tuple[str, str]]:
    """Every list filter of the schema named ``…Id`` (on paths without a path id)."""
    found = []
    for path, operations in _schema()["paths"].items():
        get = operations.get("get")
        if get is None or "{" in path:
            continue
        for parameter in get.get("parameters", []):
            if parameter["in"] == "query" and re.search(r"Id$", parameter["name"]):
                found.append((path, parameter["name"]))
    return found


QUERY_MODELS = {
    "apiKeyId": ApiKey,
    "specialistId": Specialist,
    "workspaceId": Workspace,
    "projectId": Project,
    "assigneeUserId": User,
    "userId": User,
    "assigneeSpecialistId": Specialist,
    "sessionId": ChatSession,
}


def test_foreign_ids_in_list_filters_find_nothing(home, foreign):
    filters = schema_query_ids()
    assert len(filters) >= 5, filters
    unmapped = sorted({name for _, name in filters} - set(QUERY_MODELS))
    assert unmapped == [], f"id filters without a model here: {unmapped}"
    client = client_for(home.admin, home.org)
    wrong = []
    for path, name in filters:
        for obj in foreign.objects(QUERY_MODELS[name]):
            response = client.get(path, {name: str(obj.pk)})
            body = response.json()
            if response.status_code != 200 or body.get("count") != 0 or body.get("results") != []:
                wrong.append((path, name, type(obj).__name__, response.status_code, response.content[:200]))
            assert leaked_data(response, foreign, {str(obj.pk)}) == [], (path, name)
    assert wrong == [], "\n".join(map(str, wrong))


# --- the WebSocket ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websocket_foreign_session_and_foreign_attachment_ids(bundled_data, settings):
    """``/ws/chat/sessions/{id}/``: a foreign session closes 4404; a frame attaching a foreign
    attachment to an own session is a ``validation_error`` naming ``attachmentIds``; nothing changes."""
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from accounts.services import issue_tokens
    from leancore.asgi import application

    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "chat": "1000/min", "chat_org": "1000/min"}

    def setup() -> tuple[World, World, str, dict]:
        home = build_world("home")
        foreign = build_world("foreign")
        return home, foreign, issue_tokens(user=home.admin).access, snapshot()

    home, foreign, token, before = await database_sync_to_async(setup)()
    for session in await database_sync_to_async(lambda: foreign.objects(ChatSession))():
        communicator = WebsocketCommunicator(application, f"/ws/chat/sessions/{session.pk}/?token={token}")
        await communicator.connect()
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
    communicator = WebsocketCommunicator(application, f"/ws/chat/sessions/{home.session.pk}/?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    for ids in ([str(foreign.attachment.pk)], [str(home.attachment.pk), str(foreign.attachment.pk)]):
        await communicator.send_json_to({"type": "message", "message": "Hello", "attachmentIds": ids})
        frame = await communicator.receive_json_from(timeout=5)
        assert frame["event"] == "error", frame
        assert frame["data"]["code"] == "validation_error", frame
        assert "attachmentIds" in frame["data"].get("errors", {}), frame
        assert foreign.marker not in str(frame).lower()
    await communicator.disconnect()
    assert changes(before, await database_sync_to_async(snapshot)()) == {}

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import SyncToAsync
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import issue_tokens
from core import throttles
from orgs.models import Membership, Organization, Role
from signup.services import open_organization

PASSWORD = "Corr3ct-Horse-Battery"
_seq = itertools.count()


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    yield
    cache.clear()
    throttles.breaker.open_until = 0.0  # a test that took the cache away leaves no open breaker


def make_user(*, email: str | None = None, name: str = "", is_staff: bool = False, password: str = PASSWORD) -> User:
    n = next(_seq)
    email = email or f"user{n}-{uuid.uuid4().hex[:6]}@example.com"
    return User.objects.create_user(email=email, password=password, name=name or f"User {n}", is_staff=is_staff)


def make_org(*, owner: User | None = None, name: str = "Acme", signup_credits: bool = True) -> Organization:
    owner = owner or make_user()
    return open_organization(name=name, owner=owner)


def add_member(org: Organization, user: User | None = None, role: str = Role.MEMBER) -> User:
    user = user or make_user()
    Membership.all_orgs.create(
        organization=org, user=user, role=role, status=Membership.Status.ACTIVE, joined_at=timezone.now()
    )
    return user


def owner_of(org: Organization) -> User:
    return Membership.all_orgs.filter(organization=org, role=Role.OWNER).first().user


def client_for(user: User | None = None, org: Organization | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_tokens(user=user).access}")
    if org is not None:
        client.defaults["HTTP_X_ORG_ID"] = str(org.pk)
    return client


MID_MONTH_NOON = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch) -> dict[str, datetime]:
    """The test's own clock (``timezone.now``): mid-month noon unless the test moves ``clock["at"]``,
    so that no test depends on today's date (midnight, the turn of a month). It ticks a microsecond
    per reading, so records made one after another keep their order."""
    now = {"at": MID_MONTH_NOON}

    def tick() -> datetime:
        now["at"] += timedelta(microseconds=1)
        return now["at"]

    monkeypatch.setattr(timezone, "now", tick)
    return now


@pytest.fixture
def bundled_data(db):
    """Transactional tests flush the database: put back what the data migrations load."""
    from billing.services import load_bundled_rates

    load_bundled_rates()


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def org(db) -> Organization:
    return make_org(name="Acme Corp")


@pytest.fixture
def owner(org) -> User:
    return owner_of(org)


@pytest.fixture
def admin_user(org) -> User:
    return add_member(org, role=Role.ADMIN)


@pytest.fixture
def member(org) -> User:
    return add_member(org, role=Role.MEMBER)


@pytest.fixture
def staff(db) -> User:
    return make_user(is_staff=True, name="Operator")


@pytest.fixture
def other_org(db) -> Organization:
    return make_org(name="Other Inc")


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


# --- fake LLM providers -------------------------------------------------------------------


@pytest.fixture(scope="session")
def _fake_llm_server():
    from tests.fakes.llm_server import FakeLLM, ThreadedServer, build_app

    fake = FakeLLM()
    with ThreadedServer(build_app(fake)) as server:
        fake.url = server.url
        yield fake


@pytest.fixture
def fake_llm(_fake_llm_server, settings):
    """The fake provider server; the openai and anthropic providers point at it."""
    _fake_llm_server.reset()
    settings.OPENAI_BASE_URL = f"{_fake_llm_server.url}/v1"
    settings.OPENAI_API_KEY = "sk-test"
    settings.ANTHROPIC_BASE_URL = _fake_llm_server.url
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    yield _fake_llm_server
    _fake_llm_server.reset()


def make_specialist(org, *, model: str = "local", **fields):
    from specialists.models import Specialist

    defaults = {"name": "Ada", "title": "Analyst", "instructions": "Be precise.", "max_output_tokens": 500}
    return Specialist.all_orgs.create(organization=org, model=model, **{**defaults, **fields})


def make_workspace_file(workspace, *, uploaded_by, filename: str = "f.txt", text: str = ""):
    """A file of ``workspace`` (its org's), its bytes nowhere: what lists and counts read of one."""
    from workspaces.models import WorkspaceFile

    return WorkspaceFile.all_orgs.create(
        organization_id=workspace.organization_id,
        workspace=workspace,
        filename=filename,
        content_type="text/plain",
        size=1,
        uploaded_by=uploaded_by,
        file=f"t/{filename}",
        text=text,
    )


@dataclass(frozen=True)
class WatchedSession:
    """An org with its owner, a specialist on a real provider's model, one chat session and the
    owner's access token: what a test of a live turn over a real server starts from."""

    org: Organization
    owner: User
    specialist: object
    session: object
    token: str

    def socket_url(self, server_url: str) -> str:
        return server_url.replace("http", "ws") + f"/ws/chat/sessions/{self.session.pk}/?token={self.token}"


def watched_session(org_name: str, *, model: str = "gpt-4o-mini") -> WatchedSession:
    from chat.models import ChatSession

    org = make_org(name=org_name)
    owner = owner_of(org)
    specialist = make_specialist(org, model=model)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner, title="t")
    return WatchedSession(org, owner, specialist, session, issue_tokens(user=owner).access)


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, _fake_llm_server):
    """One Daphne process per test session (per xdist worker) on the test database."""
    from tests.servers import Daphne, server_env

    with django_db_blocker.unblock():
        env = server_env(
            {
                "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1",
                "OPENAI_API_KEY": "sk-test",
                "ANTHROPIC_BASE_URL": _fake_llm_server.url,
                "ANTHROPIC_API_KEY": "sk-ant-test",
            }
        )
        server = Daphne(env)
    server.env = env
    yield server
    server.stop()


# --- a real MCP server ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def _mcp_servers():
    from tests.fakes.mcp_server import MCPServers

    with MCPServers() as servers:
        yield servers


@pytest.fixture
def mcp_server(_mcp_servers, settings):
    """The SDK-built MCP server (streamable HTTP and SSE) with its default tools; loopback allowed."""
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    server = _mcp_servers.server
    for tool in [t.name for t in server._tool_manager.list_tools()]:
        server.remove_tool(tool)
    server.install_default_tools()
    server.seen_headers.clear()
    server.list_delay = 0.0
    return _mcp_servers


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_connections(django_db_setup, django_db_blocker):
    """Async tests run ORM code in executor threads whose connections Django never closes: end
    them before the test database is dropped."""
    yield
    from django.db import connection

    from tests.servers import terminate_connections

    with django_db_blocker.unblock():
        terminate_connections(connection.settings_dict["NAME"])


# --- every status the suite sees is in the OpenAPI schema ------------------------------------------

_SEEN_STATUSES: set[tuple[str, str, int]] = set()


def _schema_path(route: str) -> str:
    import re

    from core.errors import camelize_key

    path = "/" + route.rstrip("/")
    path = path.replace("<uuid:pk>", "{id}")
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda match: "{" + camelize_key(match.group(1)) + "}", path)


@pytest.fixture(scope="session", autouse=True)
def _every_status_is_documented(django_db_setup):
    """Records (operation, status) of every response the test clients get, and at the end of the
    session checks each against the schema: the errors views declare are checked by use."""
    from django.test import Client

    original = Client.request

    def recording(self, **request):
        response = original(self, **request)
        match = getattr(response, "resolver_match", None)
        if match is not None and match.route and not match.route.startswith("admin"):
            _SEEN_STATUSES.add((_schema_path(match.route), request["REQUEST_METHOD"].lower(), response.status_code))
        return response

    Client.request = recording
    yield
    Client.request = original
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    undocumented = sorted(
        (path, method, status)
        for path, method, status in _SEEN_STATUSES
        if path in schema["paths"]
        and method in schema["paths"][path]
        and status != 405
        and str(status) not in schema["paths"][path][method]["responses"]
    )
    assert not undocumented, f"responses the schema does not list: {undocumented}"


@pytest.fixture
def operator(client, django_user_model):
    """A signed-in superuser's test client (``client.user``): the back office as an operator uses it."""
    user = django_user_model.objects.create_superuser(email="ops@leancore.test", password="x-Passw0rd-x")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def thread_hops(monkeypatch) -> list[str]:
    """The name of every function async code hands to a thread (``sync_to_async``), in order."""
    hops: list[str] = []
    call = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return hops

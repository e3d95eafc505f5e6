from __future__ import annotations

import pytest
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from orgs.context import OrgContext
from orgs.models import Membership, Organization, Role
from tests.webhooks.receiver import Receiver, ReceiverServer
from webhooks import services
from webhooks.jobs import QUEUE
from webhooks.models import Webhook


@pytest.fixture(scope="session")
def _receiver_server():
    with ReceiverServer() as receiver:
        yield receiver


@pytest.fixture
def receiver(_receiver_server, settings) -> Receiver:
    """The tests' webhook endpoint on loopback (which the guard lets through here)."""
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    _receiver_server.reset()
    yield _receiver_server
    _receiver_server.reset()


def admin_context(org: Organization) -> OrgContext:
    membership = Membership.all_orgs.filter(organization=org, role=Role.OWNER).select_related("user").first()
    return OrgContext(org=org, membership=membership, is_staff=False)


def hook(receiver: Receiver, org: Organization, path: str, events: list[str]) -> Webhook:
    """A webhook of ``org`` to ``path`` on the receiver, made as the API makes one; the receiver knows its secret."""
    created = services.create_webhook(context=admin_context(org), url=receiver.url + path, events=events)
    receiver.secrets[path] = created.secret
    return created.webhook


def run_webhook_jobs() -> int:
    """Runs every due job of the webhooks queue here, as the worker's delivery threads do (``--batch``)."""
    before = DBTaskResult.objects.filter(queue_name=QUEUE).exclude(status="READY").count()
    Worker(
        queue_names=[QUEUE],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-webhooks",
        excluded_queue_names=[],
    ).run()
    return DBTaskResult.objects.filter(queue_name=QUEUE).exclude(status="READY").count() - before

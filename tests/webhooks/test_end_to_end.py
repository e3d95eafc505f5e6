"""Events through the real processes: turns and a task run worked by ``manage.py db_worker`` (its turn
threads), their events delivered by the same worker's delivery threads to an endpoint that checks the
signatures; a turn failed by maintenance; and the turn threads never taking a delivery."""

from __future__ import annotations

import pytest

from chat import slots
from chat.services import fail_overdue_queued_turns
from leancore.worker import WorkerPool
from tests.conftest import client_for, make_org, make_specialist, owner_of
from tests.servers import run_worker_batch, server_env
from tests.webhooks.conftest import hook, run_webhook_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def test_turns_and_a_task_run_are_announced_by_a_real_worker(receiver, bundled_data):
    org = make_org(name="End to end")
    specialist = make_specialist(org, model="local")
    hook(receiver, org, "/e2e", ["turn.completed", "task.finished"])
    client = client_for(owner_of(org), org)
    sent = client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "Hello"}, format="json")
    assert sent.status_code == 202
    task = client.post("/tasks", {"title": "Summarize", "assigneeSpecialistId": str(specialist.pk)}, format="json")
    run = client.post(f"/tasks/{task.json()['id']}/run")
    assert run.status_code == 202
    assert receiver.received == []
    result = run_worker_batch(server_env())
    assert result.returncode == 0, result.stderr
    got = receiver.at("/e2e")
    assert all(item.verified for item in got)
    assert sorted(item.payload["type"] for item in got) == ["task.finished", "turn.completed", "turn.completed"]
    data = {item.payload["data"]["id"]: item.payload["data"] for item in got}
    messages = client.get(f"/api/chat/sessions/{sent.json()['sessionId']}").json()["messages"]
    answer = next(message for message in messages if message["id"] == sent.json()["messageId"])
    assert answer["status"] == "completed"
    assert data[answer["id"]] == {**answer, "sessionId": sent.json()["sessionId"]}
    finished = data[task.json()["id"]]
    assert finished == client.get(f"/tasks/{task.json()['id']}").json()
    assert finished["status"] == "done"
    assert data[run.json()["messageId"]]["status"] == "completed"


def test_a_turn_failed_by_maintenance_is_announced(receiver, bundled_data, settings):
    org = make_org(name="Timed out")
    specialist = make_specialist(org, model="local")
    hook(receiver, org, "/failed", ["turn.failed", "turn.completed"])
    client = client_for(owner_of(org), org)
    sent = client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "Hi"}, format="json").json()
    settings.TURN_QUEUE_TIMEOUT = 0
    assert fail_overdue_queued_turns() == 1
    assert run_webhook_jobs() == 1
    [got] = receiver.at("/failed")
    assert got.verified
    assert got.payload["type"] == "turn.failed"
    assert (got.payload["data"]["id"], got.payload["data"]["status"]) == (sent["messageId"], "failed")
    assert got.payload["data"]["sessionId"] == sent["sessionId"]


def test_the_turn_threads_never_take_a_delivery(settings, monkeypatch):
    monkeypatch.setattr(slots, "_capacity", slots._capacity)  # each pool below sets its process's turn slots
    settings.WEBHOOK_WORKER_CONCURRENCY = 3
    options = {
        "interval": 1,
        "batch": True,
        "backend_name": "default",
        "startup_delay": False,
        "max_tasks": None,
        "excluded_queue_names": [],
    }
    every = WorkerPool(concurrency=2, worker_id="w", queue_names=["*"], **options).workers
    assert [(w.process_all_queues, w.excluded_queue_names) for w in every[:2]] == [(True, ["webhooks"])] * 2
    assert [(w.process_all_queues, w.queue_names) for w in every[2:]] == [(False, ["webhooks"])] * 3
    turns_only = WorkerPool(concurrency=2, worker_id="t", queue_names=["default"], **options).workers
    assert [w.queue_names for w in turns_only] == [["default"]] * 2
    deliveries_only = WorkerPool(concurrency=2, worker_id="d", queue_names=["webhooks"], **options).workers
    assert [w.queue_names for w in deliveries_only] == [["webhooks"]] * 3
    excluded = WorkerPool(
        concurrency=1, worker_id="x", queue_names=["*"], **{**options, "excluded_queue_names": ["webhooks"]}
    )
    assert len(excluded.workers) == 1

"""A worker process runs several turns at once, and a busy org does not stall the others: one org's
queued turns never take more than half of a worker's slots while other orgs' turns wait (API.md §8)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from billing.models import CreditAccount
from chat import slots
from chat.models import Message
from tests.conftest import client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.servers import ROOT, server_env, wait_for_disconnect

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_OPTIONS = ("--interval", "0.1", "--concurrency", "2")  # two turns at once


def queue_turns(org, count: int, model: str = "local") -> list[str]:
    """``count`` async turns of ``org``, queued through the API: their message ids."""
    client = client_for(owner_of(org))
    specialist = make_specialist(org, model=model)
    ids = []
    for number in range(count):
        response = client.post(
            "/api/chat/async", {"specialistId": str(specialist.pk), "message": f"job {number}"}, format="json"
        )
        assert response.status_code == 202, response.content
        ids.append(response.json()["messageId"])
    return ids


@pytest.fixture
def admitted():
    """The admissions a test takes, given back after it (the slots are the process's)."""
    taken: list[slots.Admission] = []
    yield taken
    for admission in taken:
        slots.leave(admission)
    assert slots.running() == {}


def test_an_org_at_half_the_slots_is_deferred_while_another_org_waits(bundled_data, settings, admitted):
    settings.WORKER_TURN_CONCURRENCY = 4
    busy, other = make_org(name="Busy"), make_org(name="Other")
    a1, a2, a3 = queue_turns(busy, 3)
    (b1,) = queue_turns(other, 1)
    for message_id in (a1, a2):
        admission = slots.admit(message_id=message_id)
        admitted.append(admission)
        assert admission.deferred is False
    assert slots.running() == {busy.pk: 2}
    # the busy org has half of the four slots, and another org's turn waits: the third is put back
    assert slots.admit(message_id=a3).deferred is True
    admission = slots.admit(message_id=b1)
    admitted.append(admission)
    assert admission.deferred is False
    assert slots.running() == {busy.pk: 2, other.pk: 1}
    # once nobody else waits, the busy org may use the free slots
    Message.all_orgs.filter(pk=b1).update(status="running")
    admission = slots.admit(message_id=a3)
    admitted.append(admission)
    assert admission.deferred is False
    assert slots.running() == {busy.pk: 3, other.pk: 1}


def test_an_org_below_its_share_is_never_deferred_and_a_waiting_org_at_its_share_does_not_count(
    bundled_data, settings, admitted
):
    settings.WORKER_TURN_CONCURRENCY = 5  # a share of 2
    first, second = make_org(name="First"), make_org(name="Second")
    f1, f2, f3 = queue_turns(first, 3)
    s1, s2, _ = queue_turns(second, 3)
    for message_id in (f1, s1, f2, s2):  # both orgs reach their share; both still have one waiting
        admission = slots.admit(message_id=message_id)
        admitted.append(admission)
        assert admission.deferred is False
    # the fifth slot is free and the only other org waiting is at its share: nobody is put back
    admission = slots.admit(message_id=f3)
    admitted.append(admission)
    assert admission.deferred is False
    assert slots.running() == {first.pk: 3, second.pk: 2}


def test_an_org_waiting_behind_many_turns_of_another_still_counts(bundled_data, settings, admitted):
    """Whoever else waits is looked up once per org, not once per queued turn: an org at its share
    with a long queue does not hide a later org that could run."""
    settings.WORKER_TURN_CONCURRENCY = 2  # a share of 1
    busy, flood, late = make_org(name="Busy"), make_org(name="Flood"), make_org(name="Late")
    a1, a2 = queue_turns(busy, 2)
    flood_turns = queue_turns(flood, 5)
    queue_turns(late, 1)
    for message_id in (a1, flood_turns[0]):
        admission = slots.admit(message_id=message_id)
        admitted.append(admission)
        assert admission.deferred is False
    assert slots.admit(message_id=a2).deferred is True  # the late org waits and has no turn here


def test_a_single_slot_worker_defers_nothing(bundled_data, settings, admitted):
    settings.WORKER_TURN_CONCURRENCY = 1
    busy, other = make_org(name="Alone"), make_org(name="Waiting")
    (a1,) = queue_turns(busy, 1)
    queue_turns(other, 1)
    admission = slots.admit(message_id=a1)
    admitted.append(admission)
    assert admission.deferred is False


def test_a_turn_no_longer_queued_takes_no_slot(bundled_data, admitted):
    org = make_org(name="Done")
    (a1,) = queue_turns(org, 1)
    Message.all_orgs.filter(pk=a1).update(status="completed")
    admission = slots.admit(message_id=a1)
    assert (admission.org_id, admission.deferred) == (None, False)
    assert slots.running() == {}


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_busy_org_does_not_stall_another_orgs_turn_in_a_real_worker(bundled_data, fake_llm):
    """Org A queues three slow turns, then org B one. A worker with two slots runs A's first and
    B's turn together, and A's other two after: B never waits behind all of A's queue."""
    busy, other = make_org(name="Flood"), make_org(name="Small")
    flood = queue_turns(busy, 3, model="gpt-4o-mini")
    (small,) = queue_turns(other, 1, model="gpt-4o-mini")
    fake_llm.script(*[Scenario(chunks=["a ", "b ", "c ", "d"], delay=0.4, usage=(100, 10)) for _ in range(4)])
    env = server_env({"OPENAI_BASE_URL": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "sk-test"})
    log = (ROOT / "var" / "worker-fairness.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", *WORKER_OPTIONS],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        everything = [*flood, small]
        _wait(
            lambda: Message.all_orgs.filter(pk__in=everything, status="completed").count() == 4,
            60,
            "every turn to complete",
        )
    finally:
        worker.terminate()
        worker.wait(20)
        log.close()
        wait_for_disconnect(env["DATABASE_URL"])
    turns = {str(m.pk): m for m in Message.all_orgs.filter(pk__in=everything)}
    b = turns[small]
    a_started = sorted(turns[pk].started_at for pk in flood)
    # B started while A's first turn ran, before A's second and third
    assert a_started[0] < b.started_at < a_started[1], (a_started, b.started_at)
    ran_together = [pk for pk in flood if turns[pk].started_at < b.started_at < turns[pk].completed_at]
    assert len(ran_together) == 1  # two slots: one for A, one for B
    assert CreditAccount.all_orgs.get(organization=busy).reserved == 0
    assert CreditAccount.all_orgs.get(organization=other).reserved == 0

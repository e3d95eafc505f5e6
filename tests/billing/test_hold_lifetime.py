"""A hold lasts while its turn is queued or running, however long; maintenance gives back only the
holds of turns that are over or lost. A call whose hold was given back (its turn taken for lost
while the call went on) is still billed its real cost, as far as the available balance goes."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.db.models import F, Sum
from django.utils import timezone

from accounts.services import issue_tokens
from billing import services as billing
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat.models import Message
from core.credits import token_cost
from leancore.maintenance import run_upkeep
from tests.conftest import client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.servers import run_worker_batch

pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = timedelta(minutes=20)  # past RESERVATION_TTL (15 min), within TURN_QUEUE_TIMEOUT (1 h)


def mini_cost(input_tokens: int, output_tokens: int) -> Decimal:
    """gpt-4o-mini's bundled rates: 15 credits per million in, 60 out."""
    return token_cost(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_per_million=Decimal(15),
        output_per_million=Decimal(60),
    )


def ledger_matches_balance(org) -> bool:
    account = CreditAccount.all_orgs.get(organization=org)
    total = LedgerEntry.all_orgs.filter(organization=org).aggregate(total=Sum("amount"))["total"]
    return total == account.balance and account.balance >= 0


def test_a_turn_queued_past_the_ttl_keeps_its_hold_and_is_billed_when_it_runs(daphne_server, fake_llm, bundled_data):
    """The attack: an async turn waits behind a busy worker for 20 minutes. Maintenance used to
    release its hold for its age, and the turn, run later, settled on a released hold: free."""
    org = make_org(name="Queued Co")
    specialist = make_specialist(org, model="gpt-4o-mini")
    response = client_for(owner_of(org)).post(
        "/api/chat/async", {"specialistId": str(specialist.pk), "message": "Later"}, format="json"
    )
    assert response.status_code == 202, response.content
    message = Message.all_orgs.get(pk=response.json()["messageId"])
    Reservation.all_orgs.filter(pk=message.reservation_id).update(created_at=F("created_at") - LONG_AGO)
    Message.all_orgs.filter(session_id=message.session_id).update(created_at=F("created_at") - LONG_AGO)
    run_upkeep()
    assert Reservation.all_orgs.get(pk=message.reservation_id).status == "active"  # still queued: still held
    fake_llm.script(Scenario(chunks=["Done."], usage=(2000, 100)))
    result = run_worker_batch(daphne_server.env)
    assert result.returncode == 0, result.stderr
    message.refresh_from_db()
    assert message.status == "completed", (message.error_code, message.error, result.stderr[-2000:])
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.amount == -mini_cost(2000, 100)
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    assert ledger_matches_balance(org)


def test_a_live_call_longer_than_the_ttl_keeps_its_hold_and_is_billed(daphne_server, fake_llm, bundled_data):
    """The attack: a streamed call still going when its hold is 20 minutes old. Maintenance runs
    meanwhile; the running turn (its heartbeat live) keeps its hold and its whole cost is billed."""
    org = make_org(name="Long Call Co")
    specialist = make_specialist(org, model="gpt-4o-mini")
    token = issue_tokens(user=owner_of(org)).access
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(12)], delay=0.25, usage=(3000, 400)))
    streaming = threading.Event()
    body: list[str] = []

    def stream() -> None:
        with (
            httpx.Client(base_url=daphne_server.url, headers={"authorization": f"Bearer {token}"}, timeout=60) as c,
            c.stream("POST", "/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "long"}) as r,
        ):
            for line in r.iter_lines():
                body.append(line)
                if line == "event: delta":
                    streaming.set()

    thread = threading.Thread(target=stream)
    thread.start()
    assert streaming.wait(30)
    Reservation.all_orgs.filter(organization=org).update(created_at=timezone.now() - timedelta(hours=2))
    run_upkeep()
    assert Reservation.all_orgs.get(organization=org).status == "active"  # the call is live: held
    thread.join(60)
    assert "event: done" in body
    reservation = Reservation.all_orgs.get(organization=org)
    assert reservation.status == "settled"
    assert LedgerEntry.all_orgs.get(organization=org, kind="usage").amount == -mini_cost(3000, 400)
    assert ledger_matches_balance(org)


def test_a_call_that_outlives_its_turns_lease_is_still_billed(daphne_server, fake_llm, bundled_data):
    """The turn's lease runs out while its call goes on (its process was taken for lost): the
    recovery fails the turn and gives its hold back; the call that still ends is billed its real
    cost, once."""
    org = make_org(name="Lease Co")
    specialist = make_specialist(org, model="gpt-4o-mini")
    token = issue_tokens(user=owner_of(org)).access
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(12)], delay=0.25, usage=(1500, 300)))
    streaming = threading.Event()
    body: list[str] = []

    def stream() -> None:
        with (
            httpx.Client(base_url=daphne_server.url, headers={"authorization": f"Bearer {token}"}, timeout=60) as c,
            c.stream("POST", "/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "lease"}) as r,
        ):
            for line in r.iter_lines():
                body.append(line)
                if line == "event: delta":
                    streaming.set()

    thread = threading.Thread(target=stream)
    thread.start()
    assert streaming.wait(30)
    Message.all_orgs.filter(role="assistant", session__organization=org).update(
        heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert run_upkeep()["failed_stuck_turns"] == 1
    assert Reservation.all_orgs.get(organization=org).status == "released"
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    thread.join(60)
    assert "event: done" in body
    reservation = Reservation.all_orgs.get(organization=org)
    assert (reservation.status, reservation.charged) == ("settled", mini_cost(1500, 300))
    assert LedgerEntry.all_orgs.get(organization=org, kind="usage").amount == -mini_cost(1500, 300)
    assert ledger_matches_balance(org)


def test_maintenance_gives_back_the_holds_of_turns_that_are_over(bundled_data):
    """A queued turn whose session is deleted (the delete fails it and gives its hold back), and a
    turn that ended without settling its hold (maintenance gives it back): at once, whatever their
    age."""
    org = make_org(name="Ended Co")
    specialist = make_specialist(org, model="gpt-4o-mini")
    client = client_for(owner_of(org))
    sent = [
        client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": m}, format="json").json()
        for m in ("one", "two", "three")
    ]
    assert client.delete(f"/api/chat/sessions/{sent[0]['sessionId']}").status_code == 204
    assert Reservation.all_orgs.get(message_id=sent[0]["messageId"]).status == "released"
    Message.all_orgs.filter(pk=sent[1]["messageId"]).update(status="failed", error_code="llm_unavailable")
    assert run_upkeep()["released_reservations"] == 1
    assert Reservation.all_orgs.get(message_id=sent[1]["messageId"]).status == "released"
    live = Message.all_orgs.get(pk=sent[2]["messageId"])
    assert Reservation.all_orgs.get(pk=live.reservation_id).status == "active"  # still queued
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.reserved == Reservation.all_orgs.get(pk=live.reservation_id).amount
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()


def test_a_released_hold_is_settled_as_far_as_the_available_balance_goes(bundled_data):
    org = make_org(name="Short Co")
    hold = billing.reserve(
        org=org, model="gpt-4o-mini", input_tokens=1000, max_output_tokens=1000, message_id=uuid.uuid4()
    )
    billing.release(reservation_id=hold.reservation_id)  # its turn taken for lost
    account = CreditAccount.all_orgs.get(organization=org)
    billing.adjust_credits(org=org, amount=Decimal("0.01") - account.balance, kind="adjustment", reason="spent")
    other = billing.reserve(org=org, model="gpt-4o-mini", input_tokens=0, max_output_tokens=100)  # 0.006 held
    charge = billing.settle(reservation_id=hold.reservation_id, input_tokens=100_000, output_tokens=10_000)
    assert charge.credits == Decimal("0.004000")  # 2.1 credits of cost, 0.004 available
    again = billing.settle(reservation_id=hold.reservation_id, input_tokens=100_000, output_tokens=10_000)
    assert again.credits == charge.credits
    account = CreditAccount.all_orgs.get(organization=org)
    assert (account.balance, account.reserved) == (Decimal("0.006000"), other.amount)
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == 1
    assert ledger_matches_balance(org)
    assert Reservation.all_orgs.get(pk=hold.reservation_id).status == "settled"

"""A session with a turn still running cannot be deleted (409 ``invalid_state``): its call goes on,
and its hold must last until it settles. A turn still queued in it is failed first, its hold given
back. Maintenance gives back the holds of a message that vanished only once they are older than a
turn's lease."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import F, Sum

from billing.errors import InsufficientCreditsError
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat import records, turns
from chat.metering import release_holds_of_ended_turns
from chat.models import ChatSession, Message
from chat.providers.base import Usage
from core.credits import token_cost
from leancore.maintenance import run_upkeep
from orgs.context import OrgContext
from orgs.models import Membership
from tests.conftest import assert_problem, client_for, make_org, make_specialist, owner_of

pytestmark = pytest.mark.django_db(transaction=True)


def _context(org, user) -> OrgContext:
    return OrgContext(org=org, membership=Membership.all_orgs.get(user=user, organization=org), is_staff=False)


def test_deleting_the_session_of_a_running_turn_is_refused_and_its_hold_stays(bundled_data):
    """The attack: delete the session while its stream runs; maintenance used to give the hold back,
    another turn held the freed balance, and both calls' costs were clipped to the balance."""
    org = make_org(name="Del Co")
    owner = owner_of(org)
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=16000)
    CreditAccount.all_orgs.filter(organization=org).update(balance=Decimal("1.5"))
    first = turns.start_turn(context=_context(org, owner), specialist_id=specialist.pk, message="a lot")
    response = client_for(owner).delete(f"/api/chat/sessions/{first.session_id}")
    assert_problem(response, 409, "invalid_state")
    assert ChatSession.all_orgs.filter(pk=first.session_id).exists()
    run_upkeep()
    assert Reservation.all_orgs.get(pk=first.reservation_id).status == "active"
    with pytest.raises(InsufficientCreditsError):  # the balance is still held for the running call
        turns.start_turn(context=_context(org, owner), specialist_id=specialist.pk, message="again")
    charge = records.bill_and_complete_message(
        turn=first, totals=turns.Totals(), usage=Usage(50, 16000), finish_reason="length"
    )
    real = token_cost(
        input_tokens=50, output_tokens=16000, input_per_million=Decimal(15), output_per_million=Decimal(60)
    )
    assert charge.credits == real
    assert client_for(owner).delete(f"/api/chat/sessions/{first.session_id}").status_code == 204  # once it ended
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.reserved == 0
    assert account.balance == Decimal("1.5") - real
    assert -LedgerEntry.all_orgs.filter(organization=org, kind="usage").aggregate(t=Sum("amount"))["t"] == real


def test_deleting_the_session_of_a_queued_turn_fails_it_and_gives_its_hold_back(bundled_data):
    org = make_org(name="Del Queued Co")
    owner = owner_of(org)
    specialist = make_specialist(org, model="gpt-4o-mini")
    body = (
        client_for(owner)
        .post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "later"}, format="json")
        .json()
    )
    hold = Reservation.all_orgs.get(message_id=body["messageId"])
    assert CreditAccount.all_orgs.get(organization=org).reserved == hold.amount
    assert client_for(owner).delete(f"/api/chat/sessions/{body['sessionId']}").status_code == 204
    assert not Message.all_orgs.filter(pk=body["messageId"]).exists()
    hold.refresh_from_db()
    assert hold.status == "released"
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_maintenance_keeps_a_vanished_messages_young_hold(bundled_data, settings):
    """Defence in depth: a running turn's message gone all the same (its rows deleted under it)
    keeps its hold until the hold is older than a turn's lease."""
    org = make_org(name="Vanish Co")
    owner = owner_of(org)
    specialist = make_specialist(org, model="gpt-4o-mini")
    turn = turns.start_turn(context=_context(org, owner), specialist_id=specialist.pk, message="hi")
    Message.all_orgs.filter(session_id=turn.session_id).delete()
    assert release_holds_of_ended_turns() == 0
    assert Reservation.all_orgs.get(pk=turn.reservation_id).status == "active"
    lease = timedelta(seconds=settings.TURN_LEASE_SECONDS + 1)
    Reservation.all_orgs.filter(pk=turn.reservation_id).update(created_at=F("created_at") - lease)
    assert release_holds_of_ended_turns() == 1
    assert Reservation.all_orgs.get(pk=turn.reservation_id).status == "released"
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0

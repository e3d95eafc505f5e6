"""A turn started with an org API key is billed to the key (§5): through a real server, its stream's
ledger entry names the key and no user, and once the key's monthly cap is reached the next stream is
refused with 402 ``api_key_budget`` before anything reaches the model; a queued turn of a key is held,
when a worker picks it up, against the key's cap as it is then."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from billing.errors import BudgetExhaustedError
from billing.models import LedgerEntry, ModelRate
from chat import metering
from chat.models import Message
from chat.queued import load_queued_turn
from core.credits import period_bounds
from orgs import api_keys
from orgs.context import OrgContext
from orgs.models import ApiKey, Membership, Role
from tests.chat.test_stream_e2e import parse_sse
from tests.conftest import client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario


def new_key(org, *, cap: Decimal | None) -> tuple[str, ApiKey]:
    owner = Membership.all_orgs.get(organization=org, role=Role.OWNER)
    context = OrgContext(org=org, membership=owner, is_staff=False)
    created = api_keys.create_api_key(context=context, name="server", monthly_credit_limit=cap)
    return created.secret, created.key


@pytest.mark.django_db(transaction=True)
def test_a_keys_stream_is_billed_to_the_key_and_stopped_at_its_cap(daphne_server, fake_llm, bundled_data):
    org = make_org(name="Capped Key Streams")
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=1000)
    secret, key = new_key(org, cap=Decimal(1))
    body = {"specialistId": str(specialist.pk), "message": "Hello?"}
    fake_llm.script(Scenario(chunks=["Hi."], usage=(1000, 500)))
    with httpx.Client(base_url=daphne_server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as api:
        response = api.post("/api/chat/stream", json=body)
        assert response.status_code == 200, response.text
        assert [name for _, name, _ in parse_sse(response.text)][-1] == "done"
        entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
        assert (entry.user_id, entry.api_key_id) == (None, key.pk)
        spent = -entry.amount
        assert spent == Decimal("0.045")  # 1000 in × 15 + 500 out × 60, per million
        ApiKey.all_orgs.filter(pk=key.pk).update(monthly_credit_limit=spent)  # reached
        calls = len(fake_llm.requests)
        refused = api.post("/api/chat/stream", json=body)
    assert refused.status_code == 402, refused.text
    problem = refused.json()
    assert problem["code"] == "budget_exhausted"
    reset_at = period_bounds(timezone.now())[1].isoformat().replace("+00:00", "Z")
    assert {name: problem[name] for name in ("scope", "limit", "spent", "resetAt")} == {
        "scope": "api_key_budget",
        "limit": "0.045000",
        "spent": "0.045000",
        "resetAt": reset_at,
    }
    assert len(fake_llm.requests) == calls  # nothing reached the model
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == 1
    shown = client_for(owner_of(org)).get(f"/orgs/{org.pk}/api-keys/{key.pk}").json()
    assert shown["spentThisPeriod"] == "0.045000"


@pytest.mark.django_db
def test_a_queued_keys_turn_is_held_against_the_keys_cap_as_it_is_now(org):
    ModelRate.objects.create(
        model="key-model",
        provider="openai",
        display_name="Key",
        input_credits_per_million=Decimal("1000"),
        output_credits_per_million=Decimal("2000"),
        context_window=8000,
        max_output_tokens=1000,
    )
    specialist = make_specialist(org, model="key-model", max_output_tokens=1000)
    secret, key = new_key(org, cap=Decimal(1000))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json")
    assert response.status_code == 202, response.content
    message_id = response.json()["messageId"]
    frozen = Message.all_orgs.get(pk=message_id).frozen_turn
    assert (frozen["senderId"], frozen["senderApiKeyId"]) == (None, str(key.pk))
    ApiKey.all_orgs.filter(pk=key.pk).update(monthly_credit_limit=Decimal("0.5"))
    turn = load_queued_turn(message_id=message_id)
    assert turn is not None
    payer = turn.payer
    assert (payer.user_id, payer.member_limit, payer.api_key_id, payer.key_limit) == (
        None,
        None,
        key.pk,
        Decimal("0.5"),
    )
    with pytest.raises(BudgetExhaustedError) as info:  # its next call (a tool round) meets the key's cap
        metering.hold(payer=turn.payer, request=turn.request, rate=turn.rate)
    assert info.value.extra["scope"] == "api_key_budget"


@pytest.mark.django_db
def test_a_capped_keys_turn_costs_one_statement_more(org):
    """The key's cap comes with the key (no statement); only a capped key's hold reads its spend, in one
    statement (usage and open holds together)."""
    ModelRate.objects.create(
        model="key-model",
        provider="openai",
        display_name="Key",
        input_credits_per_million=Decimal("1000"),
        output_credits_per_million=Decimal("2000"),
        context_window=8000,
        max_output_tokens=1000,
    )
    specialist = make_specialist(org, model="key-model", max_output_tokens=1000)
    free, capped = new_key(org, cap=None), new_key(org, cap=Decimal(1000))
    counts: dict[str, list[str]] = {}
    for secret, _ in (free, capped, free, capped):  # the second round: everything warm
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        with CaptureQueriesContext(connection) as queries:
            response = api.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json")
        assert response.status_code == 202, response.content
        counts[secret] = [q["sql"] for q in queries.captured_queries]
    assert len(counts[capped[0]]) == len(counts[free[0]]) + 1
    extra = [sql for sql in counts[capped[0]] if "billing_ledgerentry" in sql and sql.startswith("SELECT")]
    assert len(extra) == 1
    assert "billing_reservation" in extra[0]  # usage and open holds in the one statement
    assert "api_key_id" in extra[0]

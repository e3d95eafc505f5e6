"""A frozen turn's sender: a user, or the org API key the turn was started with (then no user); a
record frozen before keys (no ``senderApiKeyId``) reads as before."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from billing.models import ModelRate
from chat import snapshot
from tests.conftest import make_specialist


@pytest.fixture
def frozen_parts(org):
    specialist = make_specialist(org, model="gpt-4o-mini")
    rate = ModelRate(
        model="gpt-4o-mini",
        provider="openai",
        input_credits_per_million=Decimal(15),
        output_credits_per_million=Decimal(60),
        context_window=128000,
        max_output_tokens=4096,
    )
    return {"specialist": specialist, "rates": [rate], "tools": ([], {})}


@pytest.mark.django_db
def test_a_keys_turn_is_frozen_with_the_key_and_no_user(frozen_parts):
    key_id = uuid.uuid4()
    record = snapshot.freeze(**frozen_parts, sender_id=None, sender_api_key_id=key_id)
    assert (record["senderId"], record["senderApiKeyId"]) == (None, str(key_id))
    thawed = snapshot.thaw(record)
    assert (thawed.sender_id, thawed.sender_api_key_id) == (None, key_id)


@pytest.mark.django_db
def test_a_users_turn_and_a_record_of_before_keys(frozen_parts):
    user_id = uuid.uuid4()
    record = snapshot.freeze(**frozen_parts, sender_id=user_id)
    assert (record["senderId"], record["senderApiKeyId"]) == (str(user_id), None)
    del record["senderApiKeyId"]  # as frozen before keys
    thawed = snapshot.thaw(record)
    assert (thawed.sender_id, thawed.sender_api_key_id) == (user_id, None)

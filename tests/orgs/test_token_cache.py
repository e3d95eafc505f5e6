"""A validated access token is not verified again until its expiry (``orgs.token_cache``), and that
changes nothing an attacker or an expired caller can do."""

from __future__ import annotations

import base64
import json

import pytest
from rest_framework.test import APIClient

from accounts.services import issue_tokens
from orgs import principal, token_cache
from orgs.token_cache import ValidatedTokens
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def verifications(monkeypatch) -> list[bytes]:
    """Every full check of a token (decode, signature, type, expiry), counted."""
    seen: list[bytes] = []
    check = principal._jwt.get_validated_token

    def counted(raw: bytes):
        seen.append(raw)
        return check(raw)

    monkeypatch.setattr(principal._jwt, "get_validated_token", counted)
    principal.validated_tokens.clear()
    return seen


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_token_seen_again_is_not_verified_again(owner, verifications):
    client = _client(issue_tokens(user=owner).access)
    assert [client.get("/specialists").status_code for _ in range(3)] == [200] * 3
    assert len(verifications) == 1


def test_a_kept_token_past_its_expiry_is_refused(owner, verifications, monkeypatch):
    token = issue_tokens(user=owner).access
    client = _client(token)
    assert client.get("/specialists").status_code == 200
    expires_at = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
    monkeypatch.setattr(token_cache.time, "time", lambda: expires_at + 1)
    monkeypatch.setattr("rest_framework_simplejwt.tokens.aware_utcnow", _utc_at(expires_at + 1))
    assert_problem(client.get("/specialists"), 401, "token_not_valid")
    assert len(verifications) == 2  # checked in full again, and refused by that check


def _utc_at(timestamp: float):
    from datetime import UTC, datetime

    return lambda: datetime.fromtimestamp(timestamp, tz=UTC)


def test_a_forged_signature_of_a_kept_token_is_refused(owner, verifications):
    token = issue_tokens(user=owner).access
    assert _client(token).get("/specialists").status_code == 200
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    for _ in range(2):  # never kept: checked in full every time
        assert_problem(_client(forged).get("/specialists"), 401, "token_not_valid")
    assert len(verifications) == 3


def test_a_deactivated_user_is_refused_with_a_kept_token(owner, verifications):
    client = _client(issue_tokens(user=owner).access)
    assert client.get("/specialists").status_code == 200
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert client.get("/specialists").status_code == 401
    assert len(verifications) == 1  # the token was not the check that refused: the user read was


def test_at_most_the_size_is_kept_the_least_recently_used_dropped_first(owner):
    kept = ValidatedTokens(size=2)
    tokens = [principal._jwt.get_validated_token(issue_tokens(user=owner).access.encode()) for _ in range(3)]
    raws = [str(token).encode() for token in tokens]
    kept.keep(raws[0], tokens[0])
    kept.keep(raws[1], tokens[1])
    assert kept.get(raws[0]) is tokens[0]  # used: the second is now the oldest
    kept.keep(raws[2], tokens[2])
    assert [kept.get(raw) is not None for raw in raws] == [True, False, True]


def test_a_token_without_an_expiry_is_not_kept(owner):
    kept = ValidatedTokens()
    token = principal._jwt.get_validated_token(issue_tokens(user=owner).access.encode())
    del token.payload["exp"]
    kept.keep(b"raw", token)
    assert kept.get(b"raw") is None

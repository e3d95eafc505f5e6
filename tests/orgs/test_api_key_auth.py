"""An org API key as a credential (§5): the org is the key's, it acts with its role, it never
manages people, keys, quotas or credits, and an unknown, revoked or expired key is one 401."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orgs import api_keys
from orgs.context import OrgContext
from orgs.models import ApiKey, Membership, Role
from tests.conftest import assert_problem, make_org, make_specialist

pytestmark = pytest.mark.django_db


def new_key(org, *, role: str = Role.MEMBER, **fields) -> str:
    """A new key of ``org`` (created by its owner): the secret."""
    owner = Membership.all_orgs.get(organization=org, role=Role.OWNER)
    context = OrgContext(org=org, membership=owner, is_staff=False)
    return api_keys.create_api_key(context=context, name="server", role=role, **fields).secret


def key_client(secret: str, org=None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}", **({"HTTP_X_ORG_ID": str(org.pk)} if org else {}))
    return client


def test_a_key_reads_its_org_without_naming_it(org, owner):
    make_specialist(org)
    other = make_org(name="Other")
    make_specialist(other, name="Theirs")
    response = key_client(new_key(org)).get("/specialists")
    assert response.status_code == 200, response.content
    assert [row["name"] for row in response.json()["results"]] == ["Ada"] or response.json()["count"] == 1


def test_naming_another_org_is_not_a_member(org, owner):
    other = make_org(name="Other")
    assert_problem(key_client(new_key(org), other).get("/specialists"), 403, "not_a_member")
    assert_problem(key_client(new_key(org)).get(f"/orgs/{other.pk}/api-keys"), 404, "not_found")


def test_unknown_revoked_and_expired_keys_are_one_401(org, owner):
    secret = new_key(org)
    prefix = secret.split("_")[1]
    wrong_secret = f"lc_{prefix}_{'x' * 40}"
    unknown_prefix = f"lc_ZZZZZZZZ_{secret.split('_', 2)[2]}"
    expired = new_key(org, expires_at=timezone.now() + timedelta(seconds=1))
    ApiKey.all_orgs.filter(prefix=expired.split("_")[1]).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked = new_key(org)
    ApiKey.all_orgs.filter(prefix=revoked.split("_")[1]).update(revoked_at=timezone.now())
    bodies = []
    for raw in (wrong_secret, unknown_prefix, expired, revoked, "lc_short"):
        body = assert_problem(key_client(raw).get("/specialists"), 401, "token_not_valid")
        bodies.append(body["detail"])
    assert len(set(bodies)) == 1
    assert key_client(secret).get("/specialists").status_code == 200


def test_revocation_refuses_the_very_next_request(org, owner):
    from tests.conftest import client_for

    secret = new_key(org)
    client = key_client(secret)
    assert client.get("/specialists").status_code == 200
    key_id = ApiKey.all_orgs.get(prefix=secret.split("_")[1]).pk
    assert client_for(owner).delete(f"/orgs/{org.pk}/api-keys/{key_id}").status_code == 204
    assert_problem(client.get("/specialists"), 401, "token_not_valid")


@pytest.mark.parametrize("role", [Role.MEMBER, Role.ADMIN])
def test_a_key_never_manages_people_keys_quotas_or_credits(org, owner, member, role):
    client = key_client(new_key(org, role=role))
    refused = [
        client.get("/users/me"),
        client.get("/orgs"),
        client.post("/auth/verify", {"token": "x"}, format="json"),
        client.post("/auth/logout", {}, format="json"),
        client.post("/auth/accept-invite", {"token": "x", "password": "x" * 12, "name": "x"}, format="json"),
        client.get(f"/orgs/{org.pk}/api-keys"),
        client.post(f"/orgs/{org.pk}/api-keys", {"name": "more"}, format="json"),
        client.post("/users/invite", {"email": "new@example.com", "role": "member"}, format="json"),
        client.patch(f"/users/{member.pk}/role", {"role": "admin"}, format="json"),
        client.patch(f"/users/{member.pk}/quota", {"monthlyCreditLimit": "1"}, format="json"),
        client.delete(f"/users/{member.pk}"),
        client.post("/billing/credits/grant", {"amount": "5", "reason": "x"}, format="json"),
    ]
    for response in refused:
        assert_problem(response, 403, "permission_denied")
    assert Membership.all_orgs.get(user=member).role == Role.MEMBER
    # what it may do: read members, the balance, the model catalogue
    assert client.get("/users").status_code == 200
    assert client.get("/billing/credits/balance").status_code == 200
    assert client.get("/billing/model-rates").status_code == 200


def test_a_member_key_acts_as_a_member(org, owner):
    client = key_client(new_key(org, role=Role.MEMBER))
    assert_problem(
        client.post("/specialists", {"name": "X", "model": "local"}, format="json"), 403, "permission_denied"
    )
    admin = key_client(new_key(org, role=Role.ADMIN))
    created = admin.post("/specialists", {"name": "X", "title": "T", "model": "local"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["createdBy"] is None


def test_last_used_at_is_kept_within_a_minute(org, owner):
    secret = new_key(org)
    key = ApiKey.all_orgs.get(prefix=secret.split("_")[1])
    assert key.last_used_at is None
    key_client(secret).get("/specialists")
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    key_client(secret).get("/specialists")
    key.refresh_from_db()
    assert key.last_used_at == first  # within the minute: not written again
    ApiKey.all_orgs.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    key_client(secret).get("/specialists")
    key.refresh_from_db()
    assert key.last_used_at > first - timedelta(minutes=1)


def test_the_key_throttle_reaches_its_limit(org, owner, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "api_key": "3/min"}
    client = key_client(new_key(org))
    assert [client.get("/specialists").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/specialists")
    assert_problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) >= 1
    assert key_client(new_key(org)).get("/specialists").status_code == 200  # another key: its own


def test_specialist_ids_must_be_the_orgs(org, owner):
    from tests.conftest import client_for

    mine = make_specialist(org)
    theirs = make_specialist(make_org(name="Other"))
    client = client_for(owner)
    bad = client.post(f"/orgs/{org.pk}/api-keys", {"name": "k", "specialistIds": [str(theirs.pk)]}, format="json")
    body = assert_problem(bad, 400, "validation_error")
    assert "specialistIds" in str(body)
    good = client.post(f"/orgs/{org.pk}/api-keys", {"name": "k", "specialistIds": [str(mine.pk)]}, format="json")
    assert good.status_code == 201
    assert good.json()["specialistIds"] == [str(mine.pk)]
    empty = client.post(f"/orgs/{org.pk}/api-keys", {"name": "k", "specialistIds": []}, format="json")
    assert empty.json()["specialistIds"] is None

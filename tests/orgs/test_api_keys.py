"""Org API keys (§5): created, listed, shown and revoked by org admins; the secret shown once and
stored only as a hash; the lookup by prefix answers the same for unknown, wrong, revoked and
expired keys; creation and revocation in the org's audit trail."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from orgs import api_keys
from orgs.models import ApiKey, AuditEntry, Role
from tests.conftest import add_member, assert_problem, client_for, make_org

pytestmark = pytest.mark.django_db


def _keys_url(org, key_id=None) -> str:
    return f"/orgs/{org.pk}/api-keys" + (f"/{key_id}" if key_id else "")


def _create(client, org, **body):
    return client.post(_keys_url(org), {"name": "CI server", **body}, format="json")


def test_an_admin_creates_a_key_whose_secret_is_shown_once_and_stored_as_a_hash(org, admin_user):
    client = client_for(admin_user)
    response = _create(client, org, role="admin", monthlyCreditLimit="12.5")
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["key"]
    prefix = body["prefix"]
    assert secret.startswith(f"lc_{prefix}_")
    assert len(prefix) == 8
    assert len(secret.split("_", 2)[2]) >= 32
    assert body["role"] == "admin"
    assert body["monthlyCreditLimit"] == "12.500000"
    assert body["createdBy"] == str(admin_user.pk)
    assert body["revokedAt"] is None

    stored = ApiKey.all_orgs.get(pk=body["id"])
    raw_secret = secret.split("_", 2)[2]
    assert stored.secret_hash == hashlib.sha256(raw_secret.encode()).hexdigest()
    assert raw_secret not in str(ApiKey.all_orgs.filter(pk=stored.pk).values().get())

    shown = client.get(_keys_url(org, body["id"])).json()
    assert "key" not in shown
    assert raw_secret not in str(shown)
    listed = client.get(_keys_url(org)).json()
    assert listed["count"] == 1
    assert "key" not in listed["results"][0]
    assert raw_secret not in str(listed)


def test_the_role_is_member_or_admin_only(org, owner):
    client = client_for(owner)
    assert _create(client, org).json()["role"] == "member"
    for role in ("owner", "root"):
        problem = assert_problem(_create(client, org, role=role), 400, "validation_error")
        assert "role" in problem["errors"]


@pytest.mark.parametrize("role", [Role.MEMBER])
def test_only_admins_manage_keys(org, owner, role):
    key_id = _create(client_for(owner), org).json()["id"]
    member = client_for(add_member(org, role=role))
    assert_problem(_create(member, org), 403, "permission_denied")
    assert_problem(member.get(_keys_url(org)), 403, "permission_denied")
    assert_problem(member.get(_keys_url(org, key_id)), 403, "permission_denied")
    assert_problem(member.delete(_keys_url(org, key_id)), 403, "permission_denied")
    assert ApiKey.all_orgs.get(pk=key_id).revoked_at is None


def test_another_orgs_keys_are_not_found(org, owner):
    other = make_org(name="Other")
    key_id = _create(client_for(owner), org).json()["id"]
    outsider = client_for(add_member(other, role=Role.OWNER))
    assert_problem(outsider.get(_keys_url(org)), 404, "not_found")
    assert_problem(outsider.delete(_keys_url(org, key_id)), 404, "not_found")
    # their own org's path does not reach this org's key either
    assert_problem(outsider.get(_keys_url(other, key_id)), 404, "not_found")
    assert ApiKey.all_orgs.get(pk=key_id).revoked_at is None


def test_revocation_keeps_the_record_and_the_filter_tells_them_apart(org, owner):
    client = client_for(owner)
    kept = _create(client, org, name="kept").json()
    gone = _create(client, org, name="gone").json()
    assert client.delete(_keys_url(org, gone["id"])).status_code == 204
    assert client.delete(_keys_url(org, gone["id"])).status_code == 204  # again: nothing changes
    assert client.get(_keys_url(org, gone["id"])).json()["revokedAt"] is not None
    assert [k["name"] for k in client.get(_keys_url(org)).json()["results"]] == ["gone", "kept"]
    assert [k["id"] for k in client.get(_keys_url(org) + "?revoked=true").json()["results"]] == [gone["id"]]
    assert [k["id"] for k in client.get(_keys_url(org) + "?revoked=false").json()["results"]] == [kept["id"]]
    actions = list(AuditEntry.all_orgs.filter(organization=org, object_id=gone["id"]).values_list("action", "actor_id"))
    assert sorted(actions) == [("api_key.created", owner.pk), ("api_key.revoked", owner.pk)]  # one revocation
    assert gone["key"].split("_", 2)[2] not in str(list(AuditEntry.all_orgs.values()))


def test_the_lookup_answers_the_same_for_every_key_that_does_not_work(org, owner, django_assert_num_queries):
    client = client_for(owner)
    good = _create(client, org).json()
    revoked = _create(client, org).json()
    client.delete(_keys_url(org, revoked["id"]))
    expired = _create(client, org, expiresAt=(timezone.now() + timedelta(hours=1)).isoformat()).json()
    ApiKey.all_orgs.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert api_keys.find_api_key(good["key"]).pk.hex == good["id"].replace("-", "")
    prefix, secret = good["key"].split("_", 2)[1:]
    wrong_secret = f"lc_{prefix}_{'x' * len(secret)}"
    unknown_prefix = f"lc_{'z' * 8}_{secret}"
    for raw in (wrong_secret, unknown_prefix, revoked["key"], expired["key"]):
        # the same work whether the prefix exists or not: one read by prefix, one hash comparison
        with django_assert_num_queries(1):
            assert api_keys.find_api_key(raw) is None, raw
    assert api_keys.find_api_key("lc_short") is None

"""Invitations add nobody without consent and tell nothing about the address: the same answer for an
existing account and a new address, the invitation's own name and email until accepted, an existing
account accepts signed in as itself, and an invitation never renames, re-activates or sets the
password of an account."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts.models import User
from orgs.models import Membership
from tests.conftest import assert_problem, client_for, make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "N3w-Passw0rd!"


def _invite(client, captured, email, name="Invited Name", role="member"):
    with captured(execute=True):
        response = client.post("/users/invite", {"email": email, "role": role, "name": name}, format="json")
    token = re.search(r"^Token: (\S+)$", mail.outbox[-1].body, re.MULTILINE).group(1) if mail.outbox else None
    return response, token


def _accept(client, token, **body):
    return client.post("/auth/accept-invite", {"token": token, **body}, format="json")


def test_the_answer_is_the_same_whether_the_address_has_an_account(admin_user, org, django_capture_on_commit_callbacks):
    known = make_user(name="Real Name")
    client = client_for(admin_user)
    for_known, _ = _invite(client, django_capture_on_commit_callbacks, known.email.upper(), name="Typed Name")
    for_new, _ = _invite(client, django_capture_on_commit_callbacks, "nobody-yet@example.com", name="Typed Name")
    assert for_known.status_code == for_new.status_code == 201
    a, b = for_known.json(), for_new.json()
    assert set(a) == set(b)
    assert (a["status"], a["name"], a["email"], a["joinedAt"]) == ("invited", "Typed Name", known.email, None)
    assert (b["status"], b["name"], b["email"], b["joinedAt"]) == (
        "invited",
        "Typed Name",
        "nobody-yet@example.com",
        None,
    )
    known.refresh_from_db()
    assert known.name == "Real Name"  # the inviter renames nobody
    # not a member until they say so
    assert client_for(known).get("/users/me").json()["organizations"] == []
    assert Membership.all_orgs.get(organization=org, user=known).status == Membership.Status.INVITED
    # the list and its search show the invitation's own words, never the account's
    listed = {row["id"]: row for row in client.get("/users", {"status": "invited"}).json()["results"]}
    assert (listed[str(known.pk)]["name"], listed[str(known.pk)]["email"]) == ("Typed Name", known.email)
    assert client.get("/users", {"search": "Real Name"}).json()["count"] == 0
    assert client.get("/users", {"search": "Typed"}).json()["count"] == 2
    # renaming the pending member renames the invitation, not the account
    renamed = client.put(f"/users/{known.pk}", {"name": "Other Typed"}, format="json")
    assert renamed.json()["name"] == "Other Typed"
    known.refresh_from_db()
    assert known.name == "Real Name"


def test_an_existing_account_accepts_signed_in_and_nothing_of_it_changes(
    admin_user, org, anon, django_capture_on_commit_callbacks
):
    known = make_user(name="Real Name")
    password_hash = known.password
    _, token = _invite(client_for(admin_user), django_capture_on_commit_callbacks, known.email, role="admin")
    # signed out, the token cannot set this account's password
    assert_problem(_accept(anon, token, password=NEW_PASSWORD, name="Hijack"), 400, "invalid_token")
    known.refresh_from_db()
    assert (known.password, known.name) == (password_hash, "Real Name")
    # someone else signed in cannot use it either
    assert_problem(_accept(client_for(make_user()), token), 400, "invalid_token")
    # the account itself, signed in: it joins
    joined = _accept(client_for(known), token)
    assert joined.status_code == 200, joined.content
    assert joined.json() == {"organization": {"id": str(org.pk), "name": org.name}, "role": "admin"}
    known.refresh_from_db()
    assert (known.password, known.name, known.is_active) == (password_hash, "Real Name", True)
    orgs = client_for(known).get("/users/me").json()["organizations"]
    assert orgs == [{"id": str(org.pk), "name": org.name, "role": "admin"}]
    member = client_for(admin_user).get("/users", {"status": "active", "search": "Real Name"}).json()["results"]
    assert [row["id"] for row in member] == [str(known.pk)]  # accepted: the account's own name now
    assert_problem(_accept(client_for(known), token), 400, "invalid_token")  # used


def test_an_invitation_never_reactivates_a_deactivated_account(
    admin_user, org, anon, django_capture_on_commit_callbacks
):
    banned = make_user(name="Banned")
    banned.is_active = False
    banned.save(update_fields=["is_active"])
    password_hash = banned.password
    response, token = _invite(client_for(admin_user), django_capture_on_commit_callbacks, banned.email)
    assert response.status_code == 201
    assert response.json()["status"] == "invited"  # the same answer as for anyone
    assert_problem(_accept(anon, token, password=NEW_PASSWORD, name="Back"), 400, "invalid_token")
    banned.refresh_from_db()
    assert (banned.is_active, banned.password, banned.name) == (False, password_hash, "Banned")
    login = anon.post("/auth/login", {"email": banned.email, "password": NEW_PASSWORD}, format="json")
    assert_problem(login, 401, "invalid_credentials")


def test_a_new_address_accepts_with_a_password_and_gets_the_invitation_name(
    admin_user, org, anon, django_capture_on_commit_callbacks
):
    _, token = _invite(client_for(admin_user), django_capture_on_commit_callbacks, "fresh@example.com", name="Fresh")
    missing = _accept(anon, token)
    assert "password" in assert_problem(missing, 400, "validation_error")["errors"]
    accepted = _accept(anon, token, password=NEW_PASSWORD)
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["user"]["name"] == "Fresh"
    assert accepted.json()["user"]["organizations"] == [{"id": str(org.pk), "name": org.name, "role": "member"}]


def test_a_revoked_invitation_never_blocks_signing_up(admin_user, anon, django_capture_on_commit_callbacks):
    client = client_for(admin_user)
    invited, token = _invite(client, django_capture_on_commit_callbacks, "later@example.com")
    assert client.delete(f"/users/{invited.json()['id']}").status_code == 204
    body = {"organizationName": "Later Co", "name": "Later", "email": "later@example.com", "password": NEW_PASSWORD}
    registered = anon.post("/register", body, format="json")
    assert registered.status_code == 201, registered.content
    assert registered.json()["user"]["name"] == "Later"
    assert_problem(_accept(anon, token, password="Other-Passw0rd!"), 400, "invalid_token")
    assert anon.post("/auth/login", {"email": "later@example.com", "password": NEW_PASSWORD}).status_code == 200
    again = anon.post("/register", {**body, "organizationName": "Twice"}, format="json")
    assert "email" in assert_problem(again, 400, "validation_error")["errors"]


def test_signing_up_with_a_pending_invitation_leaves_it_to_accept_signed_in(
    admin_user, org, anon, django_capture_on_commit_callbacks
):
    _, token = _invite(client_for(admin_user), django_capture_on_commit_callbacks, "pending@example.com")
    body = {"organizationName": "Own Co", "name": "Pending", "email": "pending@example.com", "password": NEW_PASSWORD}
    assert anon.post("/register", body, format="json").status_code == 201
    user = User.objects.get(email="pending@example.com")
    assert [o["name"] for o in client_for(user).get("/users/me").json()["organizations"]] == ["Own Co"]
    assert_problem(_accept(anon, token, password="Other-Passw0rd!"), 400, "invalid_token")  # an account now
    assert _accept(client_for(user), token).status_code == 200
    assert {o["name"] for o in client_for(user).get("/users/me").json()["organizations"]} == {"Own Co", org.name}


def test_inviting_again_resends_and_an_active_member_is_409(admin_user, member, django_capture_on_commit_callbacks):
    client = client_for(admin_user)
    known = make_user()
    first, old = _invite(client, django_capture_on_commit_callbacks, known.email)
    second, new = _invite(client, django_capture_on_commit_callbacks, known.email, name="Renamed Invite")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["name"] == "Renamed Invite"
    assert_problem(_accept(client_for(known), old), 400, "invalid_token")
    assert _accept(client_for(known), new).status_code == 200
    assert_problem(
        client.post("/users/invite", {"email": member.email, "role": "member"}, format="json"), 409, "already_member"
    )

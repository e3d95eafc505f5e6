from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts.models import User
from orgs.models import Membership
from tests.conftest import PASSWORD, add_member, assert_problem, client_for, make_user

pytestmark = pytest.mark.django_db


def _token(message) -> str:
    match = re.search(r"^Token: (\S+)$", message.body, re.MULTILINE)
    assert match
    assert f"?token={match.group(1)}" in message.body
    return match.group(1)


def test_me_needs_no_org(owner, org):
    second = make_user()
    body = client_for(second).get("/users/me").json()
    assert body["organizations"] == []
    assert body["isStaff"] is False


def test_members_list_and_filters(owner, admin_user, member, org, other_org, django_assert_max_num_queries):
    client = client_for(member)
    with django_assert_max_num_queries(6):
        body = client.get("/users").json()
    assert body["count"] == 3
    assert set(body["results"][0]) == {
        "id",
        "email",
        "name",
        "role",
        "status",
        "joinedAt",
        "monthlyCreditLimit",
        "spentThisPeriod",
    }
    assert {r["id"] for r in body["results"]} == {str(owner.pk), str(admin_user.pk), str(member.pk)}
    admins = client.get("/users?role=admin").json()["results"]
    assert [r["id"] for r in admins] == [str(admin_user.pk)]
    found = client.get("/users", {"search": member.email[:8]}).json()["results"]
    assert [r["id"] for r in found] == [str(member.pk)]
    assert client.get("/users?status=invited").json()["count"] == 0
    assert_problem(client.get("/users?role=emperor"), 400, "validation_error")


def test_members_order_by_email_and_name_as_the_list_shows_them(owner, org):
    """``ordering=email|name`` (camelCase names, like every list) orders by the shown email and name: an
    invitation's own until it is accepted, an account's otherwise; equal names keep one order over pages
    (the membership's id last); the account's own columns are never an ordering of their own."""
    User.objects.filter(pk=owner.pk).update(email="mid@example.com", name="Mid")
    add_member(org, make_user(email="alpha@example.com", name="Zed"))
    add_member(org, make_user(email="zulu@example.com", name="Ann"))
    same = [add_member(org, make_user(email=f"same{index}@example.com", name="Same")) for index in range(2)]
    # an existing account invited: the list shows the invitation's email and name, not the account's
    invited_account = make_user(email="xavier@example.com", name="Aaa account")
    client = client_for(owner)
    invitation = {"email": invited_account.email, "name": "Yves", "role": "member"}
    assert client.post("/users/invite", invitation, format="json").status_code == 201
    User.objects.filter(pk=invited_account.pk).update(email="000@example.com")  # the account's, not shown

    def shown(ordering: str, key: str) -> list[str]:
        pages = [client.get("/users", {"ordering": ordering, "pageSize": 3, "page": page}).json() for page in (1, 2)]
        return [row[key] for body in pages for row in body["results"]]

    emails = ["alpha@example.com", "mid@example.com", "same0@example.com", "same1@example.com"]
    emails += ["xavier@example.com", "zulu@example.com"]
    assert shown("email", "email") == emails
    assert shown("-email", "email") == emails[::-1]
    assert shown("name", "name") == ["Ann", "Mid", "Same", "Same", "Yves", "Zed"]  # the two Same across pages
    assert shown("-name", "name") == ["Zed", "Yves", "Same", "Same", "Mid", "Ann"]
    by_membership = [
        str(user_id)
        for user_id in Membership.all_orgs.filter(user__in=same).order_by("pk").values_list("user_id", flat=True)
    ]
    for ordering in ("name", "-name"):
        ids = shown(ordering, "id")
        assert len(set(ids)) == 6
        assert [user_id for user_id in ids if user_id in by_membership] == by_membership
    # with another field; names that are no field of the list (the account's own columns included) are
    # ignored as on every list: the default order
    assert shown("role,-email", "email")[0] == "zulu@example.com"
    default = shown("", "id")
    for hidden in ("accountEmail", "accountName", "invitedEmail", "invitedName", "userEmail", "password"):
        assert shown(hidden, "id") == default, hidden
    # an invitation without an email of its own shows, and is ordered by, its account's
    Membership.all_orgs.filter(user=invited_account).update(invited_email="")
    assert shown("email", "email") == ["000@example.com", *emails[:4], "zulu@example.com"]


def test_members_need_auth(anon):
    assert_problem(anon.get("/users"), 401, "not_authenticated")


def test_invite_new_email_sends_token_and_accept_activates(admin_user, org, anon, django_capture_on_commit_callbacks):
    client = client_for(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/users/invite", {"email": "new@acme.test", "role": "member", "name": "Newbie"}, format="json"
        )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "invited"
    assert response.json()["joinedAt"] is None
    assert mail.outbox[-1].to == ["new@acme.test"]
    token = _token(mail.outbox[-1])
    # not yet accepted → cannot log in
    login = anon.post("/auth/login", {"email": "new@acme.test", "password": "whatever-pw"}, format="json")
    assert_problem(login, 401, "invalid_credentials")
    accepted = anon.post(
        "/auth/accept-invite", {"token": token, "password": "N3w-Passw0rd!", "name": "New Person"}, format="json"
    )
    assert accepted.status_code == 200, accepted.content
    body = accepted.json()
    assert body["user"]["organizations"] == [{"id": str(org.pk), "name": org.name, "role": "member"}]
    assert body["user"]["name"] == "New Person"
    assert (
        anon.post("/auth/login", {"email": "new@acme.test", "password": "N3w-Passw0rd!"}, format="json").status_code
        == 200
    )
    again = anon.post("/auth/accept-invite", {"token": token, "password": "N3w-Passw0rd!", "name": "x"}, format="json")
    assert_problem(again, 400, "invalid_token")
    members = client.get("/users?status=active").json()
    assert members["count"] == 3


def test_reinvite_resends_and_old_token_dies(admin_user, anon, django_capture_on_commit_callbacks):
    client = client_for(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/users/invite", {"email": "new@acme.test", "role": "member"}, format="json")
        second = client.post("/users/invite", {"email": "new@acme.test", "role": "admin"}, format="json")
    assert second.status_code == 200
    assert second.json()["role"] == "admin"
    old, new = _token(mail.outbox[0]), _token(mail.outbox[1])
    assert_problem(
        anon.post("/auth/accept-invite", {"token": old, "password": "N3w-Passw0rd!"}, format="json"),
        400,
        "invalid_token",
    )
    assert (
        anon.post("/auth/accept-invite", {"token": new, "password": "N3w-Passw0rd!"}, format="json").status_code == 200
    )


def test_invite_existing_account_waits_for_its_consent(admin_user, org):
    existing = make_user()
    response = client_for(admin_user).post("/users/invite", {"email": existing.email, "role": "admin"}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "invited"
    assert Membership.all_orgs.get(organization=org, user=existing).status == Membership.Status.INVITED


def test_invite_active_member_is_409(admin_user, member):
    response = client_for(admin_user).post("/users/invite", {"email": member.email, "role": "member"}, format="json")
    assert_problem(response, 409, "already_member")


def test_invite_validation_and_roles(admin_user, owner, member):
    bad = client_for(admin_user).post("/users/invite", {"email": "x", "role": "king"}, format="json")
    assert set(assert_problem(bad, 400, "validation_error")["errors"]) == {"email", "role"}
    assert_problem(
        client_for(member).post("/users/invite", {"email": "a@b.test", "role": "member"}, format="json"),
        403,
        "permission_denied",
    )
    assert_problem(
        client_for(admin_user).post("/users/invite", {"email": "a@b.test", "role": "owner"}, format="json"),
        403,
        "permission_denied",
    )
    assert (
        client_for(owner).post("/users/invite", {"email": "a@b.test", "role": "owner"}, format="json").status_code
        == 201
    )


def test_expired_invitation(admin_user, anon, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import OneTimeToken

    with django_capture_on_commit_callbacks(execute=True):
        client_for(admin_user).post("/users/invite", {"email": "late@acme.test", "role": "member"}, format="json")
    OneTimeToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = anon.post(
        "/auth/accept-invite", {"token": _token(mail.outbox[-1]), "password": "N3w-Passw0rd!"}, format="json"
    )
    assert_problem(response, 400, "invalid_token")


def test_revoke_invitation(admin_user, org, anon, django_capture_on_commit_callbacks):
    client = client_for(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        invited = client.post("/users/invite", {"email": "gone@acme.test", "role": "member"}, format="json").json()
    assert client.delete(f"/users/{invited['id']}").status_code == 204
    response = anon.post(
        "/auth/accept-invite", {"token": _token(mail.outbox[-1]), "password": "N3w-Passw0rd!"}, format="json"
    )
    assert_problem(response, 400, "invalid_token")


def test_update_name_self_or_admin(member, admin_user, owner, org):
    assert (
        client_for(member).put(f"/users/{member.pk}", {"name": "Me Myself"}, format="json").json()["name"]
        == "Me Myself"
    )
    assert client_for(admin_user).put(f"/users/{member.pk}", {"name": "By Admin"}, format="json").status_code == 200
    assert_problem(
        client_for(member).put(f"/users/{owner.pk}", {"name": "Hijack"}, format="json"), 403, "permission_denied"
    )
    assert_problem(client_for(member).put(f"/users/{member.pk}", {}, format="json"), 400, "validation_error")


def test_user_of_another_org_is_404(owner, other_org):
    stranger = Membership.all_orgs.get(organization=other_org).user
    client = client_for(owner)
    assert_problem(client.put(f"/users/{stranger.pk}", {"name": "x"}, format="json"), 404, "not_found")
    assert_problem(client.delete(f"/users/{stranger.pk}"), 404, "not_found")
    assert_problem(client.patch(f"/users/{stranger.pk}/role", {"role": "admin"}, format="json"), 404, "not_found")


def test_role_changes(owner, admin_user, member, org):
    admin = client_for(admin_user)
    assert_problem(
        client_for(member).patch(f"/users/{admin_user.pk}/role", {"role": "member"}, format="json"),
        403,
        "permission_denied",
    )
    assert admin.patch(f"/users/{member.pk}/role", {"role": "admin"}, format="json").json()["role"] == "admin"
    assert_problem(admin.patch(f"/users/{member.pk}/role", {"role": "owner"}, format="json"), 403, "permission_denied")
    assert_problem(admin.patch(f"/users/{owner.pk}/role", {"role": "member"}, format="json"), 403, "permission_denied")
    assert_problem(admin.patch(f"/users/{member.pk}/role", {"role": "god"}, format="json"), 400, "validation_error")
    own = client_for(owner)
    assert own.patch(f"/users/{member.pk}/role", {"role": "owner"}, format="json").json()["role"] == "owner"
    assert own.patch(f"/users/{owner.pk}/role", {"role": "member"}, format="json").json()["role"] == "member"


def test_last_owner_cannot_be_demoted_or_removed(owner, admin_user, org, staff):
    client = client_for(owner)
    assert_problem(client.patch(f"/users/{owner.pk}/role", {"role": "admin"}, format="json"), 409, "last_owner")
    assert_problem(client.delete(f"/users/{owner.pk}"), 409, "last_owner")
    assert_problem(client_for(staff, org).delete(f"/users/{owner.pk}"), 403, "permission_denied")  # not a member
    assert Membership.all_orgs.get(organization=org, user=owner).role == "owner"


def test_leave_and_remove(owner, admin_user, member, org):
    assert_problem(client_for(member).delete(f"/users/{admin_user.pk}"), 403, "permission_denied")
    assert_problem(client_for(admin_user).delete(f"/users/{owner.pk}"), 403, "permission_denied")
    assert client_for(member).delete(f"/users/{member.pk}").status_code == 204
    assert User.objects.filter(pk=member.pk).exists()  # the account stays
    other = add_member(org)
    assert client_for(admin_user).delete(f"/users/{other.pk}").status_code == 204
    assert not Membership.all_orgs.filter(organization=org, user=other).exists()


def test_accept_invite_weak_password(admin_user, anon, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client_for(admin_user).post("/users/invite", {"email": "w@acme.test", "role": "member"}, format="json")
    token = _token(mail.outbox[-1])
    bad = anon.post("/auth/accept-invite", {"token": token, "password": "123"}, format="json")
    assert "password" in assert_problem(bad, 400, "validation_error")["errors"]
    assert anon.post("/auth/accept-invite", {"token": token, "password": PASSWORD}, format="json").status_code == 200

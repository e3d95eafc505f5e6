"""One way in: the stream endpoint's one-query read and the general one (REST, WebSocket) place a
caller in the same org with the same role, and refuse the same credentials the same way."""

from __future__ import annotations

import pytest
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts.models import User
from accounts.services import issue_tokens
from core.errors import NotAuthenticatedError, TokenNotValidError
from orgs.context import NotAMemberError, OrgRequiredError
from orgs.models import Membership, Role
from orgs.principal import authenticate, authenticate_token, principal_for, principal_in
from tests.conftest import add_member, client_for, make_org, make_user

pytestmark = pytest.mark.django_db


def _same(one, other) -> None:
    assert (one.user.pk, one.org.pk, one.role, one.expires_at) == (
        other.user.pk,
        other.org.pk,
        other.role,
        other.expires_at,
    )


def test_every_road_gives_the_same_principal(org, admin_user, django_assert_num_queries):
    token = issue_tokens(user=admin_user).access
    with django_assert_num_queries(1):  # the hot path: the user and their membership in one read
        fast = authenticate(token, org_header=str(org.pk))
    credential = authenticate_token(token)
    _same(fast, principal_for(credential, org_header=str(org.pk)))
    _same(fast, principal_for(credential, org_header=None))  # their only org
    _same(fast, principal_in(credential, org.pk))
    assert fast.role == Role.ADMIN
    assert fast.expires_at is not None


def test_the_roads_refuse_alike(org, member):
    token = issue_tokens(user=member).access
    other = make_org(name="Other")
    for road in (
        lambda: authenticate(token, org_header=str(other.pk)),
        lambda: principal_for(authenticate_token(token), org_header=str(other.pk)),
        lambda: principal_in(authenticate_token(token), other.pk),
    ):
        with pytest.raises(NotAMemberError):
            road()
    add_member(other, member)
    with pytest.raises(OrgRequiredError):  # two orgs and no X-Org-Id
        authenticate(token, org_header=None)
    for raw in (None, "", "not-a-token", "lc_Ab3dE5fG_" + "x" * 40):
        with pytest.raises((NotAuthenticatedError, InvalidToken, TokenNotValidError)):
            authenticate(raw, org_header=None)
        with pytest.raises((NotAuthenticatedError, InvalidToken, TokenNotValidError)):
            authenticate_token(raw)


def _reads_of_the_caller(queries) -> list[str]:
    return [query["sql"] for query in queries if User._meta.db_table in query["sql"]]


def test_an_org_list_reads_its_caller_and_membership_in_one_query(org, owner, django_assert_max_num_queries):
    """REST's org views take the stream's one read (``MemberAuthentication``): the user and their
    membership together, for the header's org, their only org or the path's org."""
    for client, url in (
        (client_for(owner), "/tasks"),
        (client_for(owner, org), "/tasks"),
        (client_for(owner), f"/orgs/{org.pk}/api-keys"),
    ):
        with django_assert_max_num_queries(8) as reads:
            assert client.get(url).status_code == 200, url
        assert len(_reads_of_the_caller(reads.captured_queries)) == 1, url


def test_the_one_read_is_taken_again_by_every_request(org, member):
    """Nothing is kept between requests: a member removed, a user deactivated or a membership
    turned back into an invitation is refused by their very next request."""
    client = client_for(member)
    assert client.get("/tasks").status_code == 200
    Membership.all_orgs.filter(organization=org, user=member).update(status=Membership.Status.INVITED)
    assert client.get("/tasks").json()["code"] == "org_required"  # no active org left to act in
    assert client_for(member, org).get("/tasks").json()["code"] == "not_a_member"
    Membership.all_orgs.filter(organization=org, user=member).update(status=Membership.Status.ACTIVE)
    assert client.get("/tasks").status_code == 200
    User.objects.filter(pk=member.pk).update(is_active=False)
    answer = client.get("/tasks")
    assert (answer.status_code, answer.json()["code"]) == (401, "token_not_valid")


def test_the_one_read_falls_back_to_the_general_one(org, member, staff):
    """Cases the one read does not place are placed as before: two orgs and no header (400), staff
    reading another org (200), a non-member naming an org (403), a path's org they are not in (404)."""
    other = make_org(name="Other")
    add_member(other, member)
    assert client_for(member).get("/tasks").json()["code"] == "org_required"
    assert client_for(member, other).get("/tasks").status_code == 200
    assert client_for(staff, org).get("/tasks").status_code == 200
    assert client_for(make_user(), org).get("/tasks").json()["code"] == "not_a_member"
    assert client_for(member).get(f"/orgs/{make_org(name='Third').pk}/api-keys").status_code == 404

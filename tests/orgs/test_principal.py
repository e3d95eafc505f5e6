"""One way in: the stream endpoint's one-query read and the general one (REST, WebSocket) place a
caller in the same org with the same role, and refuse the same credentials the same way."""

from __future__ import annotations

import pytest
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts.services import issue_tokens
from core.errors import NotAuthenticatedError, TokenNotValidError
from orgs.context import NotAMemberError, OrgRequiredError
from orgs.models import Role
from orgs.principal import authenticate, authenticate_token, principal_for, principal_in
from tests.conftest import add_member, make_org

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

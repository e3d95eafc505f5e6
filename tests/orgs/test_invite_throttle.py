"""Invitations are throttled (THROTTLE_INVITE per organization and per client address): a free
sign-up cannot make the product e-mail an address again and again in its own organization's name."""

from __future__ import annotations

import pytest
from django.core import mail

from tests.conftest import assert_problem, client_for, make_org, owner_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def invite_rate(settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "invite": "5/hour"}
    return 5


def _invite(client, email: str):
    return client.post("/users/invite", {"email": email, "role": "member"}, format="json")


def test_re_inviting_one_address_in_a_loop_is_refused(invite_rate, django_capture_on_commit_callbacks):
    """The attack: a new org named like a phishing lure re-sends one invitation forty times."""
    org = make_org(name="Spam Org <click http://evil.example>")
    spammer = client_for(owner_of(org), org)
    with django_capture_on_commit_callbacks(execute=True):
        codes = [_invite(spammer, "victim@example.com").status_code for _ in range(40)]
    assert codes == [201] + [200] * (invite_rate - 1) + [429] * (40 - invite_rate)
    assert len(mail.outbox) == invite_rate  # no e-mail once refused
    refused = _invite(spammer, "victim@example.com")
    assert_problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) >= 1


def test_one_client_spends_one_allowance_across_its_organizations(invite_rate):
    """Opening another org (a free sign-up) gives the same client no new allowance."""
    first, second = make_org(name="First"), make_org(name="Second")
    at_first, at_second = client_for(owner_of(first), first), client_for(owner_of(second), second)
    assert [_invite(at_first, f"a{i}@example.com").status_code for i in range(3)] == [201] * 3
    assert [_invite(at_second, f"b{i}@example.com").status_code for i in range(3)] == [201, 201, 429]
    # another client of the second org still has room there
    elsewhere = client_for(owner_of(second), second)
    elsewhere.defaults["REMOTE_ADDR"] = "198.51.100.20"
    assert _invite(elsewhere, "c@example.com").status_code == 201


def test_one_organization_spends_one_allowance_whoever_invites(invite_rate, org, owner):
    """Admins (or one admin from many addresses) of one org share the org's allowance."""
    codes = []
    for i in range(invite_rate + 1):
        client = client_for(owner, org)
        client.defaults["REMOTE_ADDR"] = f"198.51.100.{30 + i}"
        codes.append(_invite(client, f"person{i}@example.com").status_code)
    assert codes == [201] * invite_rate + [429]
    other = make_org(name="Unrelated")
    assert _invite(client_for(owner_of(other), other), "x@example.com").status_code == 201  # others unaffected


def test_refused_before_the_role_check_costs_nothing(invite_rate, org, member):
    """A member (not an admin) is refused 403 and spends none of the org's allowance."""
    as_member = client_for(member, org)
    for _ in range(invite_rate + 2):
        assert _invite(as_member, "y@example.com").status_code == 403
    admin = client_for(owner_of(org), org)
    admin.defaults["REMOTE_ADDR"] = "198.51.100.60"
    assert _invite(admin, "z@example.com").status_code == 201


def test_the_default_rate_is_per_hour(settings):
    count, _, period = settings.THROTTLE_RATES["invite"].partition("/")
    assert period == "hour"
    assert 0 < int(count) <= 100

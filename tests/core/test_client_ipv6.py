"""An IPv6 client is its /64: whoever is routed a /64 holds every address in it, so keying a limit by
the full address would give them 2^64 allowances. An IPv4-mapped IPv6 address is its IPv4 client."""

from __future__ import annotations

import uuid

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from billing.models import CreditAccount
from core.throttles import client_address


def _request(remote: str, **headers: str):
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


def test_an_ipv6_peer_is_its_slash_64(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    one = client_address(_request("2001:db8:1:2:aaaa:bbbb:cccc:1"))
    assert one == "2001:db8:1:2::/64"
    assert client_address(_request("2001:db8:1:2::ffff")) == one  # same /64: one client
    assert client_address(_request("2001:db8:1:3::1")) != one  # the next /64: another
    assert client_address(_request("::ffff:203.0.113.5")) == "203.0.113.5"  # mapped: the IPv4 client
    assert client_address(_request("203.0.113.5")) == "203.0.113.5"


def test_behind_a_proxy_the_address_it_wrote_is_keyed_the_same(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_address(_request("10.0.0.2", HTTP_X_FORWARDED_FOR="2001:db8:9:9:1::7")) == "2001:db8:9:9::/64"
    assert client_address(_request("10.0.0.2", HTTP_X_FORWARDED_FOR="::ffff:198.51.100.4")) == "198.51.100.4"


def _register(remote: str):
    tag = uuid.uuid4().hex[:10]
    body = {
        "organizationName": f"Free Credits {tag}",
        "name": "Minter",
        "email": f"minter-{tag}@example.com",
        "password": "Str0ng-Passw0rd!",
    }
    return APIClient(REMOTE_ADDR=remote).post("/register", body, format="json")


@pytest.mark.django_db
def test_rotating_addresses_within_one_slash_64_cannot_mint_sign_up_credits(settings):
    """The attack: a loop of POST /register, each from a new address of the caller's own /64 (and a
    mapped IPv4 address that is the same client as its IPv4 form)."""
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "register": "3/hour"}
    statuses = [_register(f"2001:db8:42:7:{uuid.uuid4().hex[:4]}::{i + 1:x}").status_code for i in range(6)]
    assert statuses == [201] * 3 + [429] * 3
    assert _register("2001:db8:42:8::1").status_code == 201  # a neighbouring /64 is another client
    assert [_register(a).status_code for a in ("203.0.113.9", "203.0.113.9", "::ffff:203.0.113.9")] == [201] * 3
    assert _register("::ffff:203.0.113.9").status_code == 429
    assert CreditAccount.all_orgs.count() == 7  # sign-up credits only for the allowed ones


def test_the_default_sign_up_rate_mints_little(settings):
    count, _, period = settings.THROTTLE_RATES["register"].partition("/")
    assert period == "hour"
    assert int(count) <= 10

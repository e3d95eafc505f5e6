"""One client address for every per-client limit: the TCP peer, or X-Forwarded-For only as far as
TRUSTED_PROXY_COUNT proxies are trusted. Sign-up credits cannot be minted by rotating a header."""

from __future__ import annotations

import uuid

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from billing.models import CreditAccount
from core.throttles import client_address
from tests.servers import Daphne, server_env

PEER = "192.0.2.10"


def _request(**headers: str):
    return RequestFactory().get("/", REMOTE_ADDR=PEER, **headers)


def test_without_trusted_proxies_no_header_moves_the_address(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    spoofing = {
        "HTTP_X_FORWARDED_FOR": "203.0.113.7",
        "HTTP_X_REAL_IP": "203.0.113.8",
        "HTTP_FORWARDED": "for=203.0.113.9",
    }
    assert client_address(_request(**spoofing)) == PEER


def test_with_one_trusted_proxy_the_client_is_the_last_entry(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # what the client wrote comes first; what the proxy saw is last
    assert client_address(_request(HTTP_X_FORWARDED_FOR="10.1.1.1, 203.0.113.7")) == "203.0.113.7"
    assert client_address(_request(HTTP_X_FORWARDED_FOR=" 2001:db8::1 ")) == "2001:db8::/64"  # its /64
    # no header, an empty one, or one that is not an address: the peer (the proxy itself)
    assert client_address(_request()) == PEER
    assert client_address(_request(HTTP_X_FORWARDED_FOR=" , ")) == PEER
    assert client_address(_request(HTTP_X_FORWARDED_FOR="10.1.1.1, not-an-ip")) == PEER
    # X-Real-IP and Forwarded are never read
    assert client_address(_request(HTTP_X_REAL_IP="203.0.113.8", HTTP_FORWARDED="for=203.0.113.9")) == PEER


def test_with_two_trusted_proxies_the_entry_the_outer_one_wrote(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    header = "10.9.9.9, 203.0.113.7, 198.51.100.2"  # client's word, the outer proxy's, the inner one's
    assert client_address(_request(HTTP_X_FORWARDED_FOR=header)) == "203.0.113.7"
    assert client_address(_request(HTTP_X_FORWARDED_FOR="198.51.100.2")) == PEER  # fewer than trusted


def test_serve_refuses_proxy_headers_one_setting_governs():
    """Daphne's --proxy-headers took the first X-Forwarded-For entry (the client's): gone."""
    with pytest.raises(CommandError, match="TRUSTED_PROXY_COUNT"):
        call_command("serve", "--proxy-headers")


def _register(url: str, headers: dict[str, str]) -> httpx.Response:
    tag = uuid.uuid4().hex[:10]
    body = {
        "organizationName": f"Free Credits {tag}",
        "name": "Minter",
        "email": f"minter-{tag}@example.com",
        "password": "Str0ng-Passw0rd!",
    }
    return httpx.post(f"{url}/register", json=body, headers=headers, timeout=30)


@pytest.mark.django_db(transaction=True)
def test_rotating_x_forwarded_for_cannot_mint_sign_up_credits():
    """The attack: a loop of POST /register, each with a new random X-Forwarded-For. Directly
    connected (TRUSTED_PROXY_COUNT 0) the header is ignored; behind one proxy (1) only the entry the
    proxy wrote counts, whatever the client put before it. Either way the limit holds."""
    limit = 3
    direct = Daphne(server_env({"THROTTLE_REGISTER": f"{limit}/hour"}))
    proxied = Daphne(server_env({"THROTTLE_REGISTER": f"{limit}/hour", "TRUSTED_PROXY_COUNT": "1"}))
    try:
        statuses = []
        for _ in range(limit + 2):
            spoofed = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
            headers = {"X-Forwarded-For": spoofed, "X-Real-IP": spoofed, "Forwarded": f"for={spoofed}"}
            statuses.append(_register(direct.url, headers).status_code)
        assert statuses == [201] * limit + [429, 429], statuses

        statuses = []
        for _ in range(limit + 2):
            spoofed = f"10.{uuid.uuid4().int % 250}.0.1"
            # the proxy appended the address it saw (the same client each time) after the client's words
            statuses.append(_register(proxied.url, {"X-Forwarded-For": f"{spoofed}, 203.0.113.50"}).status_code)
        assert statuses == [201] * limit + [429, 429], statuses
        another = _register(proxied.url, {"X-Forwarded-For": "203.0.113.51"})  # a different client behind it
        assert another.status_code == 201, another.text
    finally:
        direct.stop()
        proxied.stop()
    assert CreditAccount.all_orgs.count() == 2 * limit + 1  # sign-up credits only for the allowed ones

"""WebSockets end when their access does, through a real Daphne: 4401 when the access token the
socket was opened with expires, 4403 within the re-check interval of the user being deactivated or
leaving the organization (nobody announcing it)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import websockets
from asgiref.sync import async_to_sync
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from chat.models import ChatSession
from orgs.models import Membership
from tests.conftest import add_member, make_org, make_specialist, owner_of
from tests.servers import Daphne, server_env

pytestmark = pytest.mark.django_db(transaction=True)

RECHECK = 0.5


@pytest.fixture(scope="module")
def recheck_daphne(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = Daphne(server_env({"WEBSOCKET_RECHECK_SECONDS": str(RECHECK)}))
    yield server
    server.stop()


def _token(user: User, seconds: float) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


def _session_for(user: User, org) -> ChatSession:
    specialist = make_specialist(org)
    return ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=user, title="t")


def _closed_after(url: str, then=None, timeout: float = 30) -> tuple[int, float]:
    """Opens the socket, runs ``then`` (in a thread) once it is open, and waits for its close: (code,
    seconds from open to close)."""

    async def run() -> tuple[int, float]:
        async with websockets.connect(url) as socket:
            opened = time.monotonic()
            if then is not None:
                await asyncio.get_running_loop().run_in_executor(None, then)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(socket.recv(), timeout=timeout)
            return info.value.rcvd.code, time.monotonic() - opened

    return async_to_sync(run)()


def test_a_socket_closes_4401_when_its_token_expires(recheck_daphne, bundled_data):
    org = make_org(name="Expiring Co")
    owner = owner_of(org)
    session = _session_for(owner, org)
    url = recheck_daphne.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/?token={_token(owner, 4)}"
    code, lasted = _closed_after(url)
    assert code == 4401
    assert 1.5 <= lasted <= 12  # not at once (the re-checks pass), and soon after the expiry


def test_a_deactivated_user_is_closed_4403_within_the_interval(recheck_daphne, bundled_data):
    org = make_org(name="Deactivated Co")
    owner = owner_of(org)
    session = _session_for(owner, org)
    url = recheck_daphne.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/?token={_token(owner, 600)}"
    # an operator deactivates the account: a plain update, no announcement on the channel layer
    code, lasted = _closed_after(url, lambda: User.objects.filter(pk=owner.pk).update(is_active=False))
    assert code == 4403
    assert lasted < 10


def test_a_member_who_left_is_closed_4403_within_the_interval(recheck_daphne, bundled_data):
    org = make_org(name="Leaving Co")
    member = add_member(org)
    session = _session_for(member, org)
    url = recheck_daphne.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/?token={_token(member, 600)}"
    code, lasted = _closed_after(url, lambda: Membership.all_orgs.filter(organization=org, user=member).delete())
    assert code == 4403
    assert lasted < 10

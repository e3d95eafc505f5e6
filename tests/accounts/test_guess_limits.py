"""Every secret-guessing door counts an attempt before it checks the secret: the admin's sign-in,
invitation and reset tokens, password-reset e-mails and a signed-in user's current password. Many
parallel guesses are each counted, at most the limit of them are evaluated and the rest are refused
429 with Retry-After; a right guess is taken back (it is no failure)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from django.core import mail
from django.test import Client

from core import throttles
from core.cache import RedisCache
from tests.conftest import PASSWORD, assert_problem, client_for, make_user
from tests.servers import redis_url_for_tests

NEW_PASSWORD = "An0ther-Passw0rd!"


@pytest.fixture
def redis_counts(monkeypatch):
    """The limits on Redis, as deployed (the counts must hold across threads and processes)."""
    backend = RedisCache(redis_url_for_tests(), {"KEY_PREFIX": f"guess-test-{uuid.uuid4().hex}"})
    monkeypatch.setattr(throttles, "cache", backend)
    # the middle of a minute and of an hour, still: guesses sent at once never straddle two windows
    # (past a boundary the sliding window weighs the last one's count, and a few more would pass)
    real = time.time()
    middle = real - real % 3600 + 1800 + 30
    monkeypatch.setattr(throttles, "time", SimpleNamespace(time=lambda: middle, monotonic=time.monotonic))
    return backend


def _login_rate(settings, rate: str) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": rate}


def _at_once(count: int, send: Callable[[int], int]) -> list[int]:
    """``count`` requests released together (each from its own thread); their statuses, sorted."""
    start = threading.Barrier(count)
    statuses: list[int] = []

    def run(i: int) -> None:
        start.wait()
        statuses.append(send(i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_parallel_admin_password_guesses_beyond_the_limit_are_refused(redis_counts, settings):
    _login_rate(settings, "3/min")
    staff = make_user(is_staff=True)

    def guess(i: int) -> int:
        return Client().post("/admin/login/", {"username": staff.email, "password": f"guess-{i}"}).status_code

    assert _at_once(20, guess) == [200] * 3 + [429] * 17  # three forms shown again; the rest unchecked
    refused = Client().post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1


@pytest.mark.django_db(transaction=True)
def test_parallel_invitation_token_guesses_beyond_the_limit_are_refused(redis_counts, settings):
    _login_rate(settings, "2/min")  # a client may fail five times the rate: 10

    def guess(i: int) -> int:
        body = {"token": f"guessed-{i}-{uuid.uuid4().hex}", "password": NEW_PASSWORD, "name": "Guesser"}
        return Client().post("/auth/accept-invite", body, content_type="application/json").status_code

    assert _at_once(30, guess) == [400] * 10 + [429] * 20


@pytest.mark.django_db(transaction=True)
def test_parallel_password_reset_requests_send_at_most_the_limit_of_emails(redis_counts, settings):
    """Each request sends an e-mail: all of them count, also when they arrive together."""
    _login_rate(settings, "3/min")
    victim = make_user()

    def ask(_: int) -> int:
        return (
            Client().post("/auth/password-reset", {"email": victim.email}, content_type="application/json").status_code
        )

    assert _at_once(20, ask) == [202] * 3 + [429] * 17
    assert len([m for m in mail.outbox if victim.email in m.to]) == 3


@pytest.mark.django_db
def test_reset_token_guesses_are_limited_per_client(settings, anon):
    _login_rate(settings, "2/min")
    body = {"password": NEW_PASSWORD}
    for i in range(10):
        wrong = anon.post("/auth/password-reset/confirm", {**body, "token": f"guess-{i}"}, format="json")
        assert_problem(wrong, 400, "invalid_token")
    refused = anon.post("/auth/password-reset/confirm", {**body, "token": "guess-10"}, format="json")
    assert_problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) >= 1
    elsewhere = Client(REMOTE_ADDR="198.51.100.9")  # another client still gets its answer
    other = elsewhere.post("/auth/password-reset/confirm", {**body, "token": "x"}, content_type="application/json")
    assert other.status_code == 400


@pytest.mark.django_db
def test_a_stolen_access_token_cannot_guess_the_current_password(settings, owner):
    """Someone holding a 15-minute access token guesses ``currentPassword``: THROTTLE_LOGIN wrong
    guesses for that user (from any address), then 429 — even for the right password."""
    _login_rate(settings, "3/min")
    thief = client_for(owner)
    for i in range(3):
        wrong = thief.post(
            "/users/me/password", {"currentPassword": f"g{i}", "newPassword": NEW_PASSWORD}, format="json"
        )
        body = assert_problem(wrong, 400, "validation_error")
        assert "currentPassword" in body["errors"]
    elsewhere = client_for(owner)
    elsewhere.defaults["REMOTE_ADDR"] = "198.51.100.10"  # per user, not only per client
    right = elsewhere.post(
        "/users/me/password", {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}, format="json"
    )
    assert_problem(right, 429, "rate_limited")
    assert int(right["Retry-After"]) >= 1
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_parallel_current_password_guesses_beyond_the_limit_are_refused(redis_counts, settings):
    _login_rate(settings, "3/min")
    victim = make_user()

    def guess(i: int) -> int:
        body = {"currentPassword": f"guess-{i}", "newPassword": NEW_PASSWORD}
        return client_for(victim).post("/users/me/password", body, format="json").status_code

    assert _at_once(20, guess) == [400] * 3 + [429] * 17


@pytest.mark.django_db
def test_right_guesses_are_not_failures(settings, owner, anon):
    """A right password (or a right current password with a weak new one) is taken back: a user who
    keeps signing in or fixing their new password is never slowed down."""
    _login_rate(settings, "2/min")
    for _ in range(5):
        assert anon.post("/auth/login", {"email": owner.email, "password": PASSWORD}, format="json").status_code == 200
    me = client_for(owner)
    for _ in range(5):
        weak = me.post("/users/me/password", {"currentPassword": PASSWORD, "newPassword": "short"}, format="json")
        body = assert_problem(weak, 400, "validation_error")
        assert "newPassword" in body["errors"]
    # the allowance is whole: two wrong guesses are still answered, the third refused
    for _ in range(2):
        assert anon.post("/auth/login", {"email": owner.email, "password": "wrong"}, format="json").status_code == 401
    assert anon.post("/auth/login", {"email": owner.email, "password": "wrong"}, format="json").status_code == 429
    for _ in range(2):
        wrong = me.post("/users/me/password", {"currentPassword": "wrong", "newPassword": NEW_PASSWORD}, format="json")
        assert wrong.status_code == 400
    refused = me.post("/users/me/password", {"currentPassword": "wrong", "newPassword": NEW_PASSWORD}, format="json")
    assert refused.status_code == 429


@pytest.mark.django_db
def test_the_schema_shows_the_new_429s(anon):
    paths = anon.get("/api/schema", {"format": "json"}).json()["paths"]
    for path in ("/users/me/password", "/auth/password-reset/confirm", "/users/invite"):
        refused = paths[path]["post"]["responses"]["429"]
        assert "rate_limited" in refused["description"]
        assert "Retry-After" in refused["headers"]

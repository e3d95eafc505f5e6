"""Sessions end when they should: a changed or reset password revokes every refresh token (rotated
ones too), logout {all: true} revokes the caller's; wrong guesses are counted atomically, also in
parallel; the admin's sign-in spends the same allowance as the API's."""

from __future__ import annotations

import re
import threading
import uuid

import pytest
from django.core import mail
from django.test import Client, RequestFactory

from core import throttles
from core.cache import RedisCache
from tests.conftest import PASSWORD, assert_problem, client_for, make_user
from tests.servers import redis_url_for_tests

NEW_PASSWORD = "An0ther-Passw0rd!"


def _login(anon, email, password=PASSWORD):
    return anon.post("/auth/login", {"email": email, "password": password}, format="json")


def _refresh(anon, token):
    return anon.post("/auth/refresh", {"refreshToken": token}, format="json")


def _sessions(anon, user, count=2) -> list[str]:
    """``count`` signed-in sessions of ``user``; the first one's refresh token has been rotated once."""
    tokens = [_login(anon, user.email).json()["refreshToken"] for _ in range(count)]
    rotated = _refresh(anon, tokens[0])
    assert rotated.status_code == 200
    tokens[0] = rotated.json()["refreshToken"]
    return tokens


@pytest.mark.django_db
def test_a_password_change_revokes_every_refresh_token(anon, owner, member):
    stolen = _sessions(anon, owner)
    bystander = _login(anon, member.email).json()["refreshToken"]
    changed = client_for(owner).post(
        "/users/me/password", {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}, format="json"
    )
    assert changed.status_code == 204
    for token in stolen:  # an attacker's copy renews no more, rotated or not
        assert_problem(_refresh(anon, token), 401, "token_not_valid")
    assert _refresh(anon, bystander).status_code == 200  # other people's sessions are theirs
    assert _login(anon, owner.email, NEW_PASSWORD).status_code == 200


@pytest.mark.django_db
def test_a_password_reset_revokes_every_refresh_token(anon, owner, django_capture_on_commit_callbacks):
    stolen = _sessions(anon, owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert anon.post("/auth/password-reset", {"email": owner.email}, format="json").status_code == 202
    token = re.search(r"^Token: (\S+)$", mail.outbox[-1].body, re.MULTILINE).group(1)
    confirmed = anon.post("/auth/password-reset/confirm", {"token": token, "password": NEW_PASSWORD}, format="json")
    assert confirmed.status_code == 204
    for refresh in stolen:
        assert_problem(_refresh(anon, refresh), 401, "token_not_valid")


@pytest.mark.django_db
def test_logout_all_revokes_every_refresh_token_of_the_caller(anon, owner, member):
    tokens = _sessions(anon, owner, count=3)
    bystander = _login(anon, member.email).json()["refreshToken"]
    assert client_for(owner).post("/auth/logout", {"all": True}, format="json").status_code == 204
    for token in tokens:
        assert_problem(_refresh(anon, token), 401, "token_not_valid")
    assert _refresh(anon, bystander).status_code == 200
    # one token, as before
    one = _login(anon, owner.email).json()["refreshToken"]
    assert client_for(owner).post("/auth/logout", {"refreshToken": one}, format="json").status_code == 204
    assert_problem(_refresh(anon, one), 401, "token_not_valid")
    # neither: the field to give is named
    body = assert_problem(client_for(owner).post("/auth/logout", {}, format="json"), 400, "validation_error")
    assert "refreshToken" in body["errors"]
    assert_problem(client_for(owner).post("/auth/logout", {"all": False}, format="json"), 400, "validation_error")


@pytest.mark.django_db
def test_the_schema_shows_both_logout_bodies(anon):
    schema = anon.get("/api/schema", {"format": "json"}).json()
    body = schema["paths"]["/auth/logout"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    variants = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]["oneOf"]
    shapes = [schema["components"]["schemas"][v["$ref"].rsplit("/", 1)[-1]]["properties"] for v in variants]
    assert [sorted(shape) for shape in shapes] == [["refreshToken"], ["all"]]


@pytest.fixture
def redis_counts(monkeypatch):
    """The limits on the Redis cache the servers use (the in-process cache is one process's)."""
    backend = RedisCache(redis_url_for_tests(), {"KEY_PREFIX": f"failures-test-{uuid.uuid4().hex}"})
    monkeypatch.setattr(throttles, "cache", backend)
    return backend


def test_parallel_failures_are_each_counted(redis_counts, settings, monkeypatch):
    """The attack on the old read-then-write counter: N guesses at once recorded one failure."""
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "1000/min"}
    monkeypatch.setattr(throttles.time, "time", lambda: 1_800_000_030.0)  # within one window
    request = RequestFactory().post("/auth/login", REMOTE_ADDR="198.51.100.5")
    guesses = 24
    start = threading.Barrier(guesses)

    def guess() -> None:
        start.wait()
        throttles.login_limits(request, email="victim@example.com").count()  # a wrong guess: never forgiven

    threads = [threading.Thread(target=guess) for _ in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert throttles.FailureLimiter("login").failures("email:victim@example.com") == guesses


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_logins_beyond_the_limit_are_refused_unchecked(redis_counts, settings):
    """The attack: three times the limit of guesses at once. Each is counted before its password is
    checked, so at most ``limit`` of them are ever evaluated (401); the rest are refused (429)."""
    limit, guesses = 8, 24
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": f"{limit}/min"}
    victim = make_user()
    start = threading.Barrier(guesses)
    statuses: list[int] = []

    def guess(i: int) -> None:
        anon = Client()
        start.wait()
        response = anon.post(
            "/auth/login", {"email": victim.email, "password": f"guess-{i}"}, content_type="application/json"
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * limit + [429] * (guesses - limit), statuses
    right = Client().post("/auth/login", {"email": victim.email, "password": PASSWORD}, content_type="application/json")
    assert right.status_code == 429  # the guesses spent the allowance, the right password waits too


@pytest.mark.django_db
def test_the_admin_login_is_limited_like_the_api_login(settings, staff):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "3/min"}
    browser = Client()
    assert browser.get("/admin/login/").status_code == 200
    for _ in range(2):
        page = browser.post("/admin/login/", {"username": staff.email, "password": "wrong-guess"})
        assert page.status_code == 200  # the form again
    api = Client().post("/auth/login", {"email": staff.email, "password": "wrong"}, content_type="application/json")
    assert api.status_code == 401  # the third failure, through the API: the same allowance
    refused = browser.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "_auth_user_id" not in browser.session
    # and one client guessing across many emails is stopped as on the API (five times the rate)
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "2/min"}
    spray = Client(REMOTE_ADDR="198.51.100.77")
    codes = [
        spray.post("/admin/login/", {"username": f"u{i}@example.com", "password": "x"}).status_code for i in range(11)
    ]
    assert codes == [200] * 10 + [429]


@pytest.mark.django_db
def test_a_right_admin_login_is_not_counted(settings, staff):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "2/min"}
    for _ in range(4):
        browser = Client()
        signed_in = browser.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
        assert signed_in.status_code == 302

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import pytest
from django.core import mail
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import issue_tokens
from tests.conftest import PASSWORD, assert_problem, client_for, make_user

pytestmark = pytest.mark.django_db


def login(anon, email, password=PASSWORD):
    return anon.post("/auth/login", {"email": email, "password": password}, format="json")


def test_login_returns_tokens_and_user(anon, org, owner):
    response = login(anon, owner.email)
    assert response.status_code == 200
    body = response.json()
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 15 * 60
    assert body["accessToken"]
    assert body["refreshToken"]
    assert body["user"] == {
        "id": str(owner.pk),
        "email": owner.email,
        "name": owner.name,
        "isStaff": False,
        "organizations": [{"id": str(org.pk), "name": org.name, "role": "owner"}],
    }
    me = anon.get("/users/me", HTTP_AUTHORIZATION=f"Bearer {body['accessToken']}")
    assert me.status_code == 200
    assert me.json()["email"] == owner.email


def test_login_is_case_insensitive_on_email_and_accepts_trailing_slash(anon, owner):
    assert anon.post("/auth/login/", {"email": owner.email.upper(), "password": PASSWORD}).status_code == 200


def test_wrong_password_and_unknown_email_look_the_same(anon, owner):
    wrong = assert_problem(login(anon, owner.email, "nope-nope-nope"), 401, "invalid_credentials")
    unknown = assert_problem(login(anon, "ghost@example.com"), 401, "invalid_credentials")
    assert wrong["detail"] == unknown["detail"]


def test_login_validation_error_names_fields(anon):
    body = assert_problem(anon.post("/auth/login", {"email": "not-an-email"}), 400, "validation_error")
    assert set(body["errors"]) == {"email", "password"}


def test_repeated_failures_for_one_email_are_throttled(anon, owner, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "3/min"}
    for _ in range(3):
        assert_problem(login(anon, owner.email, "bad-password-1"), 401, "invalid_credentials")
    response = login(anon, owner.email)  # even the right password waits now
    assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_repeated_failures_from_one_client_are_throttled_across_emails(anon, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "2/min"}
    for i in range(10):  # five times the per-email rate
        assert_problem(login(anon, f"user{i}@example.com"), 401, "invalid_credentials")
    assert_problem(login(anon, "one-more@example.com"), 429, "rate_limited")


def test_successful_logins_are_not_throttled(anon, owner, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "2/min"}
    for _ in range(5):
        assert login(anon, owner.email).status_code == 200


def test_refresh_rotates_and_old_token_is_rejected(anon, owner):
    first = login(anon, owner.email).json()
    response = anon.post("/auth/refresh", {"refreshToken": first["refreshToken"]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "refreshToken", "expiresIn"}
    assert body["refreshToken"] != first["refreshToken"]
    reuse = anon.post("/auth/refresh", {"refreshToken": first["refreshToken"]}, format="json")
    assert_problem(reuse, 401, "token_not_valid")
    assert anon.post("/auth/refresh", {"refreshToken": body["refreshToken"]}, format="json").status_code == 200


def test_refresh_with_garbage_is_401(anon):
    assert_problem(anon.post("/auth/refresh", {"refreshToken": "garbage"}, format="json"), 401, "token_not_valid")


def test_verify(anon, owner):
    token = issue_tokens(user=owner).access
    response = anon.get("/auth/verify", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True
    assert body["userId"] == str(owner.pk)
    assert body["expiresAt"].endswith("Z")


def test_verify_without_token_is_401(anon):
    response = anon.get("/auth/verify")
    assert_problem(response, 401, "not_authenticated")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_expired_token_is_401(anon, owner):
    token = AccessToken.for_user(owner)
    token.set_exp(lifetime=-timedelta(seconds=5))
    assert_problem(anon.get("/auth/verify", HTTP_AUTHORIZATION=f"Bearer {token}"), 401, "token_not_valid")


def test_forged_signature_is_401(anon, owner):
    header, payload, _sig = issue_tokens(user=owner).access.split(".")
    forged = f"{header}.{payload}.{_b64({'x': 1})}"
    assert_problem(anon.get("/auth/verify", HTTP_AUTHORIZATION=f"Bearer {forged}"), 401, "token_not_valid")


def test_tampered_payload_is_401(anon, owner, staff):
    header, payload, sig = issue_tokens(user=owner).access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["user_id"] = str(staff.pk)
    forged = f"{header}.{_b64(claims)}.{sig}"
    assert_problem(anon.get("/users/me", HTTP_AUTHORIZATION=f"Bearer {forged}"), 401, "token_not_valid")


def test_alg_none_is_401(anon, owner):
    _header, payload, _sig = issue_tokens(user=owner).access.split(".")
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    assert_problem(anon.get("/auth/verify", HTTP_AUTHORIZATION=f"Bearer {unsigned}"), 401, "token_not_valid")


def test_refresh_token_is_not_an_access_token(anon, owner):
    refresh = issue_tokens(user=owner).refresh
    assert_problem(anon.get("/auth/verify", HTTP_AUTHORIZATION=f"Bearer {refresh}"), 401, "token_not_valid")


def test_stale_authorization_header_does_not_break_login(anon, owner):
    response = anon.post(
        "/auth/login", {"email": owner.email, "password": PASSWORD}, HTTP_AUTHORIZATION="Bearer expired.garbage.x"
    )
    assert response.status_code == 200


def test_logout_revokes_refresh_token(anon, owner):
    tokens = login(anon, owner.email).json()
    client = client_for(owner)
    assert client.post("/auth/logout", {"refreshToken": tokens["refreshToken"]}, format="json").status_code == 204
    again = anon.post("/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json")
    assert_problem(again, 401, "token_not_valid")


def test_logout_refuses_someone_elses_token(anon, owner):
    other = make_user()
    other_refresh = issue_tokens(user=other).refresh
    body = assert_problem(
        client_for(owner).post("/auth/logout", {"refreshToken": other_refresh}, format="json"), 400, "validation_error"
    )
    assert "refreshToken" in body["errors"]
    assert anon.post("/auth/refresh", {"refreshToken": other_refresh}, format="json").status_code == 200


def test_logout_needs_auth(anon):
    assert_problem(anon.post("/auth/logout", {"refreshToken": "x"}, format="json"), 401, "not_authenticated")


def _token_from_mail() -> str:
    match = re.search(r"^Token: (\S+)$", mail.outbox[-1].body, re.MULTILINE)
    assert match, mail.outbox[-1].body
    assert f"?token={match.group(1)}" in mail.outbox[-1].body
    return match.group(1)


def test_password_reset_flow(anon, owner, django_capture_on_commit_callbacks):
    refresh = login(anon, owner.email).json()["refreshToken"]
    with django_capture_on_commit_callbacks(execute=True):
        assert anon.post("/auth/password-reset", {"email": owner.email}, format="json").status_code == 202
    assert mail.outbox[-1].to == [owner.email]
    token = _token_from_mail()
    response = anon.post(
        "/auth/password-reset/confirm", {"token": token, "password": "Brand-New-Passw0rd"}, format="json"
    )
    assert response.status_code == 204
    assert login(anon, owner.email, "Brand-New-Passw0rd").status_code == 200
    assert_problem(login(anon, owner.email), 401, "invalid_credentials")
    assert_problem(anon.post("/auth/refresh", {"refreshToken": refresh}, format="json"), 401, "token_not_valid")
    reused = anon.post("/auth/password-reset/confirm", {"token": token, "password": "Another-Passw0rd!"}, format="json")
    assert_problem(reused, 400, "invalid_token")


def test_password_reset_for_unknown_email_is_202_and_sends_nothing(anon, db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert anon.post("/auth/password-reset", {"email": "ghost@example.com"}, format="json").status_code == 202
    assert mail.outbox == []


def test_password_reset_confirm_unknown_token(anon, db):
    response = anon.post("/auth/password-reset/confirm", {"token": "nope", "password": "Brand-New-Passw0rd"})
    assert_problem(response, 400, "invalid_token")


def test_password_reset_weak_password_keeps_token_usable(anon, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        anon.post("/auth/password-reset", {"email": owner.email}, format="json")
    token = _token_from_mail()
    weak = anon.post("/auth/password-reset/confirm", {"token": token, "password": "123"}, format="json")
    assert "password" in assert_problem(weak, 400, "validation_error")["errors"]
    ok = anon.post("/auth/password-reset/confirm", {"token": token, "password": "Brand-New-Passw0rd"}, format="json")
    assert ok.status_code == 204


def test_change_password(anon, owner):
    client = client_for(owner)
    wrong = client.post(
        "/users/me/password", {"currentPassword": "wrong", "newPassword": "Brand-New-Passw0rd"}, format="json"
    )
    assert "currentPassword" in assert_problem(wrong, 400, "validation_error")["errors"]
    ok = client.post(
        "/users/me/password", {"currentPassword": PASSWORD, "newPassword": "Brand-New-Passw0rd"}, format="json"
    )
    assert ok.status_code == 204
    assert login(anon, owner.email, "Brand-New-Passw0rd").status_code == 200


def test_passwords_are_hashed_with_argon2_and_older_hashes_upgraded_at_login(anon, owner, settings):
    """The production hashers (the suite's fast MD5 one is set aside here): a new password is an
    Argon2 hash; an account still on PBKDF2 is rehashed with Argon2 at its next successful login."""
    import importlib

    from django.contrib.auth.hashers import make_password

    settings.PASSWORD_HASHERS = importlib.import_module("leancore.settings").PASSWORD_HASHERS
    assert make_password("Another-Passw0rd!").startswith("argon2$")
    owner.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    owner.save(update_fields=["password"])
    assert login(anon, owner.email, "wrong-password").status_code == 401
    owner.refresh_from_db()
    assert owner.password.startswith("pbkdf2_sha256$")  # a failed login changes nothing
    assert login(anon, owner.email).status_code == 200
    owner.refresh_from_db()
    assert owner.password.startswith("argon2$")
    assert login(anon, owner.email).status_code == 200  # and the new hash checks


def test_password_reset_requests_are_throttled_per_email_and_per_client(anon, owner, settings):
    """Each request sends an email: one address is asked for at most the login rate (from any
    number of clients), one client at most five times that (across addresses)."""
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "2/min"}
    for i in range(2):
        sent = anon.post("/auth/password-reset", {"email": owner.email}, format="json", REMOTE_ADDR=f"10.0.0.{i}")
        assert sent.status_code == 202
    again = anon.post("/auth/password-reset", {"email": owner.email}, format="json", REMOTE_ADDR="10.0.0.9")
    assert_problem(again, 429, "rate_limited")
    assert int(again["Retry-After"]) >= 1
    for i in range(10):  # one client: five times the per-email rate, across addresses
        sent = anon.post("/auth/password-reset", {"email": f"someone{i}@example.com"}, format="json")
        assert sent.status_code == 202
    assert_problem(anon.post("/auth/password-reset", {"email": "last@example.com"}, format="json"), 429, "rate_limited")


def test_guessing_invitation_tokens_is_throttled_per_client(anon, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "1/min"}
    body = {"token": "not-a-token", "password": "N3w-Passw0rd!", "name": "Guess"}
    for _ in range(5):  # five times the login rate for one client
        assert_problem(anon.post("/auth/accept-invite", body, format="json"), 400, "invalid_token")
    refused = anon.post("/auth/accept-invite", body, format="json")
    assert_problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) >= 1

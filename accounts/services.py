"""Identity writes: login, tokens, one-time tokens, passwords."""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.errors import InvalidCredentialsError
from accounts.models import OneTimeToken, User
from core.errors import InvalidTokenError, ValidationFailed
from core.mail import send_on_commit


@functools.cache
def _dummy_user() -> User:
    """A hash to check against when the email is unknown, so both failures take the same time."""
    user = User(email="nobody@invalid")
    user.set_password(secrets.token_urlsafe(16))
    return user


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int


def _access_lifetime() -> int:
    """Seconds an access token lives."""
    return int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds())


def issue_tokens(*, user: User) -> TokenPair:
    refresh = RefreshToken.for_user(user)
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh), expires_in=_access_lifetime())


def authenticate_credentials(*, email: str, password: str) -> User:
    """The same InvalidCredentialsError for an unknown email, a wrong password and a pending invite."""
    user = User.objects.filter(email__iexact=email.strip()).first()
    if user is None:
        _dummy_user().check_password(password)
        raise InvalidCredentialsError
    if not user.check_password(password) or not user.is_active:
        raise InvalidCredentialsError
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return user


def _lock_user(user_id: uuid.UUID | str) -> None:
    """Serializes one user's refresh-token rotations with revoking them all: a rotation that
    raced a password change cannot mint a token the revocation missed."""
    User.objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True).first()


@transaction.atomic
def rotate_refresh_token(*, refresh_token: str) -> TokenPair:
    """Rotation with blacklist: the old refresh token stops working."""
    try:
        unverified = RefreshToken(refresh_token)  # type: ignore[arg-type]  # the stubs leave out the encoded form
    except TokenError:
        unverified = None
    user_id = unverified.get(jwt_settings.USER_ID_CLAIM) if unverified is not None else None
    if isinstance(user_id, str):
        _lock_user(user_id)
    serializer = TokenRefreshSerializer(data={"refresh": refresh_token})
    serializer.is_valid(raise_exception=True)  # checks the blacklist again, under the lock
    return TokenPair(
        access=serializer.validated_data["access"],
        refresh=serializer.validated_data["refresh"],
        expires_in=_access_lifetime(),
    )


def logout(*, user: User, refresh_token: str) -> None:
    try:
        token = RefreshToken(refresh_token)  # type: ignore[arg-type]  # the stubs leave out the encoded form
    except TokenError as exc:
        raise ValidationFailed("refreshToken", "The refresh token is invalid or expired.") from exc
    if str(token.get(jwt_settings.USER_ID_CLAIM)) != str(user.pk):
        raise ValidationFailed("refreshToken", "This refresh token is not yours.")
    token.blacklist()


def revoke_refresh_token(*, outstanding: OutstandingToken) -> bool:
    """Revokes one refresh token: it refreshes no more (the session ends when its access token
    expires). False: it was already revoked."""
    _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    return created


@transaction.atomic
def revoke_all_refresh_tokens(*, user: User) -> int:
    """Every refresh token of ``user`` stops working (a password changed or reset, ``logout
    {all: true}``): the number newly revoked. Access tokens already issued live out their short
    lifetime."""
    _lock_user(user.pk)
    live = OutstandingToken.objects.filter(
        user=user, blacklistedtoken__isnull=True, expires_at__gt=timezone.now() - timedelta(minutes=1)
    )
    revoked = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=outstanding) for outstanding in live], ignore_conflicts=True
    )
    return len(revoked)


def check_password_strength(*, password: str, user: User | None = None, field: str = "password") -> None:
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationFailed(field, " ".join(exc.messages)) from exc


# --- one-time tokens ------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    raw: str  # shown once (in the email), never stored
    record: OneTimeToken


def unused_tokens(*, user: User, purpose: str) -> QuerySet[OneTimeToken]:
    return OneTimeToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True, revoked_at__isnull=True)


def create_one_time_token(*, user: User, purpose: str, ttl: timedelta, revoke_earlier: bool = True) -> IssuedToken:
    """Creates a token (returned once, stored only hashed). ``revoke_earlier``: the user's earlier
    unused ones of the same kind stop working (a flow that scopes tokens more narrowly, such as one
    invitation per organization, revokes its own)."""
    now = timezone.now()
    if revoke_earlier:
        unused_tokens(user=user, purpose=purpose).update(revoked_at=now)
    raw = secrets.token_urlsafe(32)
    record = OneTimeToken.objects.create(user=user, purpose=purpose, token_hash=_hash(raw), expires_at=now + ttl)
    return IssuedToken(raw=raw, record=record)


def consume_one_time_token(*, token: str, purpose: str) -> OneTimeToken:
    """Marks a valid token used and returns it; a used, expired, revoked or unknown one → 400 invalid_token."""
    now = timezone.now()
    record = (
        OneTimeToken.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(token_hash=_hash(token or ""), purpose=purpose)
        .first()
    )
    if record is None or record.used_at or record.revoked_at or record.expires_at <= now:
        raise InvalidTokenError
    record.used_at = now
    record.save(update_fields=["used_at"])
    return record


def token_email_text(*, intro: str, token: str, path: str) -> str:
    link = f"{settings.FRONTEND_URL.rstrip('/')}/{path}?token={token}"
    return f"{intro}\n\nOpen this link: {link}\n\nOr use this token:\nToken: {token}\n"


@transaction.atomic
def request_password_reset(*, email: str) -> None:
    """Always succeeds from the caller's view; sends a one-time token if the account exists."""
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None:
        return
    issued = create_one_time_token(
        user=user, purpose=OneTimeToken.Purpose.PASSWORD_RESET, ttl=settings.PASSWORD_RESET_TTL
    )
    body = token_email_text(
        intro="Someone asked to reset the password of your LeanCore account. If it was not you, ignore this.",
        token=issued.raw,
        path="reset-password",
    )
    send_on_commit("Reset your LeanCore password", body, [user.email])


@transaction.atomic
def confirm_password_reset(*, token: str, password: str) -> User:
    record = consume_one_time_token(token=token, purpose=OneTimeToken.Purpose.PASSWORD_RESET)
    user = record.user
    check_password_strength(password=password, user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    revoke_all_refresh_tokens(user=user)
    return user


@transaction.atomic
def change_password(*, user: User, current_password: str, new_password: str) -> None:
    if not user.check_password(current_password):
        raise ValidationFailed("currentPassword", "The current password is not correct.")
    check_password_strength(password=new_password, user=user, field="newPassword")
    user.set_password(new_password)
    user.save(update_fields=["password"])
    revoke_all_refresh_tokens(user=user)


def update_profile(*, user: User, name: str) -> User:
    user.name = name
    user.save(update_fields=["name"])
    return user

"""One way in: the caller of every path (REST, the stream endpoint, the WebSocket) resolved by one
authenticator into one typed ``Principal`` — who calls, in which org, with which role — carried
down to services and the ledger as one object.

Two steps, the same on every path: ``authenticate_token`` checks the credential and finds its user
(401 ``token_not_valid`` otherwise), ``principal_for`` places that caller in an org (the
``X-Org-Id`` value, the path's or session's org, or their only org). ``authenticate`` is both in
one read, for the hot path: the token's user and their membership in one query.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import cast

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import Token

from accounts.models import User
from core.errors import NotAuthenticatedError, NotFoundError
from orgs.api_keys import looks_like_key, use_api_key
from orgs.context import InvalidOrgIdError, NotAMemberError, OrgContext, context_for, member_context, resolve_org
from orgs.models import ApiKey, Organization
from orgs.token_cache import ValidatedTokens

_jwt = JWTAuthentication()
validated_tokens = ValidatedTokens()


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request or a socket, placed in one org: a user (``user``) or an org API key
    (``api_key``, with ``user`` None)."""

    context: OrgContext
    user: User | None
    expires_at: float | None = None  # when the credential stops being valid (a Unix time), if known

    @property
    def org(self) -> Organization:
        return self.context.org

    @property
    def role(self) -> str | None:
        return self.context.role

    @property
    def api_key(self) -> ApiKey | None:
        return self.context.api_key

    @property
    def caller_id(self) -> str:
        """The caller's id for per-caller limits and records: the user's, or ``key:<id>``."""
        if self.context.api_key is not None:
            return f"key:{self.context.api_key.pk}"
        return str(self.user.pk if self.user is not None else "")


@dataclass(frozen=True, slots=True)
class Credential:
    """A checked credential: its active user, or the usable API key; and when it expires."""

    user: User | None
    expires_at: float | None
    api_key: ApiKey | None = None


def _key_expiry(key: ApiKey) -> float | None:
    return key.expires_at.timestamp() if key.expires_at is not None else None


def _key_credential(raw: str) -> Credential:
    """An API key's credential (401 ``token_not_valid`` for an unknown, revoked or expired key, the
    same answer for each), its use counted against its own throttle."""
    key = use_api_key(raw)
    return Credential(user=None, expires_at=_key_expiry(key), api_key=key)


def _key_principal(credential: Credential, org_id: uuid.UUID | None, *, missing: type[Exception]) -> Principal:
    key = credential.api_key
    assert key is not None
    if org_id is not None and org_id != key.organization_id:
        raise missing
    context = OrgContext(org=key.organization, membership=None, is_staff=False, api_key=key)
    return Principal(context=context, user=None, expires_at=credential.expires_at)


def _header_org_id(org_header: str | None) -> uuid.UUID | None:
    if not org_header:
        return None
    try:
        return uuid.UUID(org_header.strip())
    except ValueError as exc:
        raise InvalidOrgIdError from exc


def _validated(raw: str | bytes | None) -> Token:
    """The token's validated claims (no database read): 401 like every API view. A token this
    process validated before is not verified again until its expiry (``orgs.token_cache``)."""
    if not raw:
        raise NotAuthenticatedError
    raw_bytes = raw if isinstance(raw, bytes) else raw.encode()
    token = validated_tokens.get(raw_bytes)
    if token is None:
        token = _jwt.get_validated_token(raw_bytes)
        validated_tokens.keep(raw_bytes, token)
    return token


def _expiry(token: Token) -> float | None:
    exp = token.get("exp")
    return float(exp) if exp is not None else None


def _user(token: Token) -> User:
    """The token's active user (401 for an unknown or inactive one)."""
    return cast(User, _jwt.get_user(token))  # AUTH_USER_MODEL is accounts.User


def _text(raw: str | bytes) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def authenticate_token(raw: str | bytes | None) -> Credential:
    """The credential's active user or usable API key (401 ``token_not_valid`` for a bad, expired,
    revoked or unknown one)."""
    if raw and looks_like_key(_text(raw)):
        return _key_credential(_text(raw))
    token = _validated(raw)
    return Credential(user=_user(token), expires_at=_expiry(token))


def principal_for(credential: Credential, *, org_header: str | None = None) -> Principal:
    """The caller in the org named by an ``X-Org-Id`` value, or in their only org (400/403); a
    key's org is its own (another org named → 403 ``not_a_member``)."""
    if credential.api_key is not None:
        return _key_principal(credential, _header_org_id(org_header), missing=NotAMemberError)
    assert credential.user is not None
    return Principal(
        context=resolve_org(credential.user, org_header), user=credential.user, expires_at=credential.expires_at
    )


def principal_in(credential: Credential, org_id: uuid.UUID, *, missing: type[Exception] = NotAMemberError) -> Principal:
    """The caller in the org a resource belongs to (a path's org, a session's org): ``missing`` is
    raised when they may not act there (403 ``not_a_member``, or 404 for a resource's path)."""
    if credential.api_key is not None:
        return _key_principal(credential, org_id, missing=missing)
    assert credential.user is not None
    context = context_for(credential.user, org_id)
    if context is None:
        raise missing
    return Principal(context=context, user=credential.user, expires_at=credential.expires_at)


def authenticate(raw: str | bytes | None, *, org_header: str | None) -> Principal:
    """Both steps for the hot path: the token's user and, in the same query, their active
    membership of the org asked for; any other case (staff, several orgs, a malformed header, an
    inactive or unknown user) is placed by ``principal_for`` (the user loaded, then their org
    resolved), which tells them apart. An API key is read with its org in one query too."""
    if raw and looks_like_key(_text(raw)):
        return principal_for(_key_credential(_text(raw)), org_header=org_header)
    token = _validated(raw)
    found = _member_principal(token, org_header)
    if found is not None:
        return found
    return principal_for(Credential(user=_user(token), expires_at=_expiry(token)), org_header=org_header)


def _member_principal(token: Token, org_raw: str | None) -> Principal | None:
    """The token's (active) user as an active member of the org ``org_raw`` names, else of their only
    org, in one read; None when the caller must be placed the general way."""
    try:
        user_id = uuid.UUID(str(token.get(jwt_settings.USER_ID_CLAIM)))
    except ValueError:
        return None
    context = member_context(user_id, org_raw)
    if context is None or context.membership is None:
        return None
    return Principal(context=context, user=context.membership.user, expires_at=_expiry(token))


def bearer(request: Request | HttpRequest) -> bytes | None:
    """The raw credential of an ``Authorization: Bearer …`` header (None without one)."""
    header = _jwt.get_header(cast(Request, request))  # simplejwt reads only its META, which both have
    return _jwt.get_raw_token(header) if header is not None else None


class KeyCaller:
    """``request.user`` of a request made with an org API key: authenticated, but no user (views
    that need a person refuse it: ``orgs.api``, ``core.views``)."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False
    pk = None
    id = None

    def __init__(self, key: ApiKey) -> None:
        self.api_key = key

    def __str__(self) -> str:
        return str(self.api_key)


class PrincipalAuthentication(JWTAuthentication):
    """DRF's side of the one way in: the credential checked as by ``authenticate_token``; org-aware
    views then place the caller with ``principal_for``/``principal_in`` (``orgs.api``). With an API
    key, ``request.user`` is a ``KeyCaller`` and ``request.auth`` the key."""

    def authenticate(  # type: ignore[override]  # an org API key too: a KeyCaller and the key
        self, request: Request
    ) -> tuple[User | KeyCaller, Token | ApiKey] | None:
        raw = bearer(request)
        if raw is None:
            return None
        if looks_like_key(_text(raw)):
            key = use_api_key(_text(raw))
            return KeyCaller(key), key
        token = _validated(raw)
        return _user(token), token  # the validated token stays ``request.auth``


class MemberAuthentication(PrincipalAuthentication):
    """``PrincipalAuthentication`` for org-aware views: a user's token is checked with their active
    membership of the org the request acts in (the path's org, else the one ``X-Org-Id`` names, else
    their only org) in one read, kept as the request's principal (``request_principal`` takes it).
    Every other case (staff outside their orgs, several orgs and no header, a non-member, an unknown
    or inactive user) finds no membership there and is read as ``PrincipalAuthentication`` reads
    it, then placed by ``request_principal``, which tells them apart. Nothing is cached: every
    request reads the membership and the user as they are now."""

    def __init__(self, *, path_org_id: object = None) -> None:
        super().__init__()
        self.path_org_id = path_org_id  # the raw path value; None on views whose path has no org

    def authenticate(  # type: ignore[override]  # an org API key too: a KeyCaller and the key
        self, request: Request
    ) -> tuple[User | KeyCaller, Token | ApiKey] | None:
        raw = bearer(request)
        if raw is None or looks_like_key(_text(raw)):
            return super().authenticate(request)
        token = _validated(raw)
        org = str(self.path_org_id) if self.path_org_id is not None else request.headers.get("X-Org-Id")
        principal = _member_principal(token, org)
        if principal is None or principal.user is None:
            return _user(token), token
        request.member_principal = principal  # type: ignore[attr-defined]  # read by request_principal
        return principal.user, token


def request_principal(request: Request, *, path_org_id: uuid.UUID | None = None) -> Principal:
    """The principal of an authenticated DRF request: in the path's org (a non-member gets 404
    like any object) or the one ``X-Org-Id`` names; the one ``MemberAuthentication`` read with
    the user when it found their membership there."""
    found: Principal | None = getattr(request, "member_principal", None)
    if found is not None and (path_org_id is None or found.org.pk == path_org_id):
        return found
    user = request.user
    if isinstance(request.auth, ApiKey):
        credential = Credential(user=None, expires_at=_key_expiry(request.auth), api_key=request.auth)
    elif isinstance(user, User):
        token = request.auth
        credential = Credential(user=user, expires_at=_expiry(token) if isinstance(token, Token) else None)
    else:
        raise NotAuthenticatedError
    if path_org_id is not None:
        return principal_in(credential, path_org_id, missing=NotFoundError)
    return principal_for(credential, org_header=request.headers.get("X-Org-Id"))

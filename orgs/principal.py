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
from typing import Any, cast

from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.models import User
from core.errors import NotAuthenticatedError, NotFoundError
from orgs.context import NotAMemberError, OrgContext, context_for, member_context, resolve_org
from orgs.models import Organization

_jwt = JWTAuthentication()


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request or a socket, placed in one org."""

    context: OrgContext
    user: User
    expires_at: float | None = None  # when the credential stops being valid (a Unix time), if known

    @property
    def org(self) -> Organization:
        return self.context.org

    @property
    def role(self) -> str | None:
        return self.context.role


@dataclass(frozen=True, slots=True)
class Credential:
    """A checked credential: its user, active, and when it expires."""

    user: User
    expires_at: float | None


def _validated(raw: str | bytes | None) -> Any:
    """The token's validated claims (no database read): 401 like every API view."""
    if not raw:
        raise NotAuthenticatedError
    return _jwt.get_validated_token(raw if isinstance(raw, bytes) else raw.encode())


def _expiry(token: Any) -> float | None:
    exp = token.get("exp")
    return float(exp) if exp is not None else None


def _user(token: Any) -> User:
    """The token's active user (401 for an unknown or inactive one)."""
    return cast(User, _jwt.get_user(token))  # AUTH_USER_MODEL is accounts.User


def authenticate_token(raw: str | bytes | None) -> Credential:
    """The credential's active user (401 ``token_not_valid`` for a bad, expired or unknown one)."""
    token = _validated(raw)
    return Credential(user=_user(token), expires_at=_expiry(token))


def principal_for(credential: Credential, *, org_header: str | None = None) -> Principal:
    """The caller in the org named by an ``X-Org-Id`` value, or in their only org (400/403)."""
    return Principal(
        context=resolve_org(credential.user, org_header), user=credential.user, expires_at=credential.expires_at
    )


def principal_in(credential: Credential, org_id: uuid.UUID, *, missing: type[Exception] = NotAMemberError) -> Principal:
    """The caller in the org a resource belongs to (a path's org, a session's org): ``missing`` is
    raised when they may not act there (403 ``not_a_member``, or 404 for a resource's path)."""
    context = context_for(credential.user, org_id)
    if context is None:
        raise missing
    return Principal(context=context, user=credential.user, expires_at=credential.expires_at)


def authenticate(raw: str | bytes | None, *, org_header: str | None) -> Principal:
    """Both steps for the hot path: the token's user and, in the same query, their active
    membership of the org asked for; any other case (staff, several orgs, a malformed header, an
    inactive or unknown user) takes the full road, which tells them apart."""
    token = _validated(raw)
    try:
        user_id = uuid.UUID(str(token.get(jwt_settings.USER_ID_CLAIM)))
    except ValueError:
        user_id = None
    context = member_context(user_id, org_header) if user_id is not None else None
    if context is not None and context.membership is not None:
        return Principal(context=context, user=context.membership.user, expires_at=_expiry(token))
    return principal_for(Credential(user=_user(token), expires_at=_expiry(token)), org_header=org_header)


def bearer(request: Any) -> bytes | None:
    """The raw credential of an ``Authorization: Bearer …`` header (None without one)."""
    header = _jwt.get_header(request)
    return _jwt.get_raw_token(header) if header is not None else None


class PrincipalAuthentication(JWTAuthentication):
    """DRF's side of the one way in: the credential checked as by ``authenticate_token``; org-aware
    views then place the caller with ``principal_for``/``principal_in`` (``orgs.api``)."""

    def authenticate(self, request: Request) -> tuple[User, Any] | None:  # type: ignore[override]
        raw = bearer(request)
        if raw is None:
            return None
        token = _validated(raw)
        return _user(token), token  # the validated token stays ``request.auth``


def request_principal(request: Request, *, path_org_id: uuid.UUID | None = None) -> Principal:
    """The principal of an authenticated DRF request: in the path's org (a non-member gets 404
    like any object) or the one ``X-Org-Id`` names."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticatedError
    token = request.auth
    credential = Credential(user=user, expires_at=_expiry(token) if hasattr(token, "get") else None)
    if path_org_id is not None:
        return principal_in(credential, path_org_id, missing=NotFoundError)
    return principal_for(credential, org_header=request.headers.get("X-Org-Id"))

"""Signing in and accepting an invitation: each answers with the caller and the organizations they
belong to (as ``GET /users/me``), so they live with organizations, above identity. Signing up, which
also opens the credit account, is served by ``signup`` above billing, with the same answer."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.auth import current_user
from accounts.errors import InvalidCredentialsError
from accounts.models import User
from accounts.serializers import LoginSerializer
from core.errors import InvalidTokenError, RateLimitedError
from core.throttles import CLIENT_MULTIPLIER, FailureLimiter, client_ip
from core.views import PublicAPIView, UserAPIView, valid_body
from orgs import services as org_services
from orgs.serializers import (
    AcceptInviteSerializer,
    MeSerializer,
    TokenResponseSerializer,
    token_body,
)


def token_response(user: User, *, status_code: int = 200, **extra: object) -> Response:
    """The login body: tokens and the user (as GET /users/me), plus any extra keys (sign-up adds its
    organization)."""
    pair = services.issue_tokens(user=user)
    body = token_body(user=user, access=pair.access, refresh=pair.refresh, expires_in=pair.expires_in)
    return Response({**body, **extra}, status=status_code)


class LoginView(PublicAPIView):
    errors = (InvalidCredentialsError, RateLimitedError)

    @extend_schema(
        request=LoginSerializer,
        responses={200: TokenResponseSerializer},
        summary="Log in with email and password",
        description=(
            "Repeated failures answer 429 with Retry-After: THROTTLE_LOGIN failures for one email, "
            "five times as many from one client address."
        ),
    )
    def post(self, request: Request) -> Response:
        data = valid_body(LoginSerializer, request)
        email = data["email"].strip().lower()
        per_email = (FailureLimiter("login"), f"email:{email}")
        per_client = (FailureLimiter("login", multiplier=CLIENT_MULTIPLIER), f"ip:{client_ip(request)}")
        for limiter, ident in (per_email, per_client):
            limiter.check(ident)
        try:
            user = services.authenticate_credentials(email=email, password=data["password"])
        except InvalidCredentialsError:
            for limiter, ident in (per_email, per_client):
                limiter.record_failure(ident)
            raise
        return token_response(user)


class AcceptInviteView(PublicAPIView):
    errors = (InvalidTokenError, RateLimitedError)

    @extend_schema(
        request=AcceptInviteSerializer,
        responses={200: TokenResponseSerializer},
        summary="Accept an invitation: set a password and log in",
    )
    def post(self, request: Request) -> Response:
        data = valid_body(AcceptInviteSerializer, request)
        limiter = FailureLimiter("login", multiplier=CLIENT_MULTIPLIER)  # guessing tokens from one client
        ident = f"invite:{client_ip(request)}"
        limiter.check(ident)
        try:
            user = org_services.accept_invitation(token=data["token"], password=data["password"], name=data["name"])
        except InvalidTokenError:
            limiter.record_failure(ident)
            raise
        return token_response(user)


class MeView(UserAPIView):
    @extend_schema(responses={200: MeSerializer}, summary="The caller and their organizations")
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(current_user(request)).data)

"""Signing in and accepting an invitation: each answers with the caller and the organizations they
belong to (as ``GET /users/me``), so they live with organizations, above identity. Signing up, which
also opens the credit account, is served by ``signup`` above billing, with the same answer."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.auth import current_user
from accounts.errors import InvalidCredentialsError
from accounts.models import User
from accounts.serializers import LoginSerializer
from core.errors import InvalidTokenError, PermissionDeniedError, RateLimitedError, TokenNotValidError, ValidationFailed
from core.throttles import guess_limits, login_limits
from core.views import PublicAPIView, UserAPIView, refuse_api_key, valid_body
from orgs import services as org_services
from orgs.serializers import (
    AcceptInviteNewSerializer,
    AcceptInviteSerializer,
    AcceptInviteSignedInSerializer,
    JoinedSerializer,
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
            "Repeated failures are limited: THROTTLE_LOGIN failures for one email, five times as many "
            "from one client address."
        ),
    )
    def post(self, request: Request) -> Response:
        data = valid_body(LoginSerializer, request)
        email = data["email"].strip().lower()
        # counted before the password is checked (parallel guesses each take a place; past the
        # limit they are refused unchecked), forgiven when it was right
        with login_limits(request, email=email).attempt(InvalidCredentialsError):
            user = services.authenticate_credentials(email=email, password=data["password"])
        return token_response(user)


class AcceptInviteView(APIView):
    """Public, and also read with the caller's bearer token when one is sent: an existing account
    accepts signed in as itself."""

    access = "public"
    permission_classes = [AllowAny]
    errors = (InvalidTokenError, RateLimitedError, TokenNotValidError, PermissionDeniedError)  # 403: an API key

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="AcceptInviteRequest",
            serializers=[AcceptInviteNewSerializer, AcceptInviteSignedInSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: PolymorphicProxySerializer(
                component_name="AcceptInviteResponse",
                serializers=[TokenResponseSerializer, JoinedSerializer],
                resource_type_field_name=None,
            )
        },
        summary="Accept an invitation: a new account sets its password; an existing one accepts signed in",
    )
    def post(self, request: Request) -> Response:
        refuse_api_key(request)  # a key never joins an org
        data = valid_body(AcceptInviteSerializer, request)
        if not isinstance(request.user, User) and not data.get("password"):
            raise ValidationFailed("password", "Choose a password (or sign in to accept with your account).")
        # guessing tokens from one client: counted before the token is looked up, forgiven when right
        with guess_limits(request, kind="invite").attempt(InvalidTokenError):
            if isinstance(request.user, User):
                membership = org_services.join_by_invitation(token=data["token"], user=request.user)
                return Response(JoinedSerializer(membership).data)
            user = org_services.accept_invitation(token=data["token"], password=data["password"], name=data["name"])
        return token_response(user)


class MeView(UserAPIView):
    @extend_schema(responses={200: MeSerializer}, summary="The caller and their organizations")
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(current_user(request)).data)

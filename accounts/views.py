from __future__ import annotations

from datetime import UTC, datetime

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.errors import InvalidCredentialsError
from accounts.models import User
from accounts.serializers import (
    AcceptInviteSerializer,
    ChangePasswordSerializer,
    LoginSerializer,
    MeSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetSerializer,
    RefreshResponseSerializer,
    RefreshSerializer,
    RegisterSerializer,
    TokenResponseSerializer,
    VerifyResponseSerializer,
    token_body,
)
from leancore.api.errors import InvalidTokenError, RateLimitedError, TokenNotValidError
from leancore.api.throttles import CLIENT_MULTIPLIER, FailureLimiter, RegisterThrottle, client_ip
from leancore.api.views import PublicAPIView, UserAPIView
from orgs import services as org_services
from orgs.serializers import OrganizationSerializer

NO_CONTENT = OpenApiResponse(description="Done; no body.")


def _tokens(user: User, *, status_code: int = 200, **extra: object) -> Response:
    """The login body: tokens and the user (as GET /users/me), plus any extra keys."""
    pair = services.issue_tokens(user=user)
    body = token_body(user=user, access=pair.access, refresh=pair.refresh, expires_in=pair.expires_in)
    return Response({**body, **extra}, status=status_code)


def _valid(serializer_class: type, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


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
        data = _valid(LoginSerializer, request)
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
        return _tokens(user)


class RefreshView(PublicAPIView):
    errors = (TokenNotValidError,)

    @extend_schema(
        request=RefreshSerializer,
        responses={200: RefreshResponseSerializer},
        summary="Exchange a refresh token (it rotates: the old one stops working)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(RefreshSerializer, request)
        pair = services.rotate_refresh_token(refresh_token=data["refresh_token"])
        return Response({"access_token": pair.access, "refresh_token": pair.refresh, "expires_in": pair.expires_in})


class VerifyView(UserAPIView):
    @extend_schema(responses={200: VerifyResponseSerializer}, summary="Check the bearer access token")
    def get(self, request: Request) -> Response:
        expires_at = datetime.fromtimestamp(int(request.auth["exp"]), tz=UTC)
        return Response({"valid": True, "user_id": request.user.pk, "expires_at": expires_at})


class LogoutView(UserAPIView):
    @extend_schema(request=RefreshSerializer, responses={204: NO_CONTENT}, summary="Revoke a refresh token")
    def post(self, request: Request) -> Response:
        data = _valid(RefreshSerializer, request)
        services.logout(user=request.user, refresh_token=data["refresh_token"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class AcceptInviteView(PublicAPIView):
    errors = (InvalidTokenError, RateLimitedError)

    @extend_schema(
        request=AcceptInviteSerializer,
        responses={200: TokenResponseSerializer},
        summary="Accept an invitation: set a password and log in",
    )
    def post(self, request: Request) -> Response:
        data = _valid(AcceptInviteSerializer, request)
        limiter = FailureLimiter("login", multiplier=CLIENT_MULTIPLIER)  # guessing tokens from one client
        ident = f"invite:{client_ip(request)}"
        limiter.check(ident)
        try:
            user = org_services.accept_invitation(token=data["token"], password=data["password"], name=data["name"])
        except InvalidTokenError:
            limiter.record_failure(ident)
            raise
        return _tokens(user)


class PasswordResetView(PublicAPIView):
    errors = (RateLimitedError,)

    @extend_schema(
        request=PasswordResetSerializer,
        responses={202: NO_CONTENT},
        summary="Ask for a password-reset email (always 202)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(PasswordResetSerializer, request)
        # every request counts (it sends an email): per address asked for, and more per client
        per_email = (FailureLimiter("login"), f"reset-email:{data['email'].strip().lower()}")
        per_client = (FailureLimiter("login", multiplier=CLIENT_MULTIPLIER), f"reset:{client_ip(request)}")
        for limiter, ident in (per_email, per_client):
            limiter.check(ident)
        for limiter, ident in (per_email, per_client):
            limiter.record_failure(ident)
        services.request_password_reset(email=data["email"])
        return Response(status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicAPIView):
    errors = (InvalidTokenError,)

    @extend_schema(
        request=PasswordResetConfirmSerializer,
        responses={204: NO_CONTENT},
        summary="Set a new password with a reset token; all refresh tokens stop working",
    )
    def post(self, request: Request) -> Response:
        data = _valid(PasswordResetConfirmSerializer, request)
        services.confirm_password_reset(token=data["token"], password=data["password"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(UserAPIView):
    @extend_schema(responses={200: MeSerializer}, summary="The caller and their organizations")
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


class ChangePasswordView(UserAPIView):
    @extend_schema(request=ChangePasswordSerializer, responses={204: NO_CONTENT}, summary="Change your password")
    def post(self, request: Request) -> Response:
        data = _valid(ChangePasswordSerializer, request)
        services.change_password(
            user=request.user, current_password=data["current_password"], new_password=data["new_password"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class RegisterResponseSerializer(TokenResponseSerializer):
    organization = OrganizationSerializer()


class RegisterView(PublicAPIView):
    throttle_classes = [RegisterThrottle]

    @extend_schema(
        request=RegisterSerializer,
        responses={201: RegisterResponseSerializer},
        summary="Sign up: creates the account, the organization (you are its owner) and sign-up credits",
    )
    def post(self, request: Request) -> Response:
        data = _valid(RegisterSerializer, request)
        user, org = org_services.register(
            organization_name=data["organization_name"],
            name=data["name"],
            email=data["email"],
            password=data["password"],
        )
        organization = OrganizationSerializer(org, context={"roles": {org.pk: "owner"}}).data
        return _tokens(user, status_code=status.HTTP_201_CREATED, organization=organization)

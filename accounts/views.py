"""Identity over HTTP: refresh, verify and revoke tokens, reset and change passwords. Signing in,
sign-up, invitations and ``/users/me`` answer with the caller's organizations, so they are served
by ``orgs.auth_views``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services
from accounts.auth import current_user
from accounts.serializers import (
    ChangePasswordSerializer,
    LogoutAllSerializer,
    LogoutOneSerializer,
    LogoutSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetSerializer,
    RefreshResponseSerializer,
    RefreshSerializer,
    VerifyResponseSerializer,
)
from core.errors import InvalidTokenError, RateLimitedError, TokenNotValidError, ValidationFailed
from core.throttles import guess_limits, login_limits
from core.views import PublicAPIView, UserAPIView, valid_body

NO_CONTENT = OpenApiResponse(description="Done; no body.")


class RefreshView(PublicAPIView):
    errors = (TokenNotValidError,)

    @extend_schema(
        request=RefreshSerializer,
        responses={200: RefreshResponseSerializer},
        summary="Exchange a refresh token (it rotates: the old one stops working)",
    )
    def post(self, request: Request) -> Response:
        data = valid_body(RefreshSerializer, request)
        pair = services.rotate_refresh_token(refresh_token=data["refresh_token"])
        return Response({"access_token": pair.access, "refresh_token": pair.refresh, "expires_in": pair.expires_in})


class VerifyView(UserAPIView):
    @extend_schema(responses={200: VerifyResponseSerializer}, summary="Check the bearer access token")
    def get(self, request: Request) -> Response:
        token = cast(AccessToken, request.auth)  # the validated access token (a user's: no API key here)
        expires_at = datetime.fromtimestamp(int(token["exp"]), tz=UTC)
        return Response({"valid": True, "user_id": current_user(request).pk, "expires_at": expires_at})


class LogoutView(UserAPIView):
    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="LogoutRequest",
            serializers=[LogoutOneSerializer, LogoutAllSerializer],
            resource_type_field_name=None,
        ),
        responses={204: NO_CONTENT},
        summary="Revoke a refresh token, or with {all: true} every refresh token of yours",
    )
    def post(self, request: Request) -> Response:
        data = valid_body(LogoutSerializer, request)
        if data["all"]:
            services.revoke_all_refresh_tokens(user=current_user(request))
        else:
            services.logout(user=current_user(request), refresh_token=data["refresh_token"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordResetView(PublicAPIView):
    errors = (RateLimitedError,)

    @extend_schema(
        request=PasswordResetSerializer,
        responses={202: NO_CONTENT},
        summary="Ask for a password-reset email (always 202)",
    )
    def post(self, request: Request) -> Response:
        data = valid_body(PasswordResetSerializer, request)
        # every request counts (it sends an email): per address asked for, and more per client
        login_limits(request, email=data["email"], kind="reset").count()
        services.request_password_reset(email=data["email"])
        return Response(status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicAPIView):
    errors = (InvalidTokenError, RateLimitedError)

    @extend_schema(
        request=PasswordResetConfirmSerializer,
        responses={204: NO_CONTENT},
        summary="Set a new password with a reset token; all refresh tokens stop working",
    )
    def post(self, request: Request) -> Response:
        data = valid_body(PasswordResetConfirmSerializer, request)
        with guess_limits(request, kind="reset-confirm").attempt(InvalidTokenError):
            services.confirm_password_reset(token=data["token"], password=data["password"])
        return Response(status=status.HTTP_204_NO_CONTENT)


def _names_current_password(exc: Exception) -> bool:
    """A wrong current password (the 400 that names ``currentPassword``), not a weak new one."""
    errors = exc.extra.get("errors") if isinstance(exc, ValidationFailed) else None
    return isinstance(errors, dict) and "currentPassword" in errors


class ChangePasswordView(UserAPIView):
    errors = (RateLimitedError,)

    @extend_schema(
        request=ChangePasswordSerializer,
        responses={204: NO_CONTENT},
        summary="Change your password; every refresh token of yours stops working",
    )
    def post(self, request: Request) -> Response:
        data = valid_body(ChangePasswordSerializer, request)
        user = current_user(request)
        # counted before the password is checked (a stolen access token cannot guess in parallel)
        with guess_limits(request, subject=f"user:{user.pk}", kind="change").attempt(_names_current_password):
            services.change_password(
                user=user, current_password=data["current_password"], new_password=data["new_password"]
            )
        return Response(status=status.HTTP_204_NO_CONTENT)

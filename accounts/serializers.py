from __future__ import annotations

from rest_framework import serializers


class RefreshResponseSerializer(serializers.Serializer[object]):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    expires_in = serializers.IntegerField()


class LoginSerializer(serializers.Serializer[object]):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False)


class RefreshSerializer(serializers.Serializer[object]):
    refresh_token = serializers.CharField()


class LogoutOneSerializer(serializers.Serializer[object]):
    refresh_token = serializers.CharField(help_text="The refresh token to revoke.")


class LogoutAllSerializer(serializers.Serializer[object]):
    all = serializers.BooleanField(help_text="true: every refresh token of the caller stops working.")


class LogoutSerializer(serializers.Serializer[object]):
    """``{refreshToken}`` (that one) or ``{all: true}`` (every one of the caller)."""

    refresh_token = serializers.CharField(required=False)
    all = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if not attrs.get("all") and not attrs.get("refresh_token"):
            raise serializers.ValidationError({"refresh_token": ["Give a refresh token, or all: true."]})
        return attrs


class VerifyResponseSerializer(serializers.Serializer[object]):
    valid = serializers.BooleanField()
    user_id = serializers.UUIDField()
    expires_at = serializers.DateTimeField()


class PasswordResetSerializer(serializers.Serializer[object]):
    email = serializers.EmailField()


class PasswordResetConfirmSerializer(serializers.Serializer[object]):
    token = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False)


class ChangePasswordSerializer(serializers.Serializer[object]):
    current_password = serializers.CharField(trim_whitespace=False)
    new_password = serializers.CharField(trim_whitespace=False)

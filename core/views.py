"""Base views that need no organization: public and user-only. Every view declares its access
class (``access``): public, user (no org) or org-scoped (``orgs.api``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, cast

from rest_framework import viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

Access = Literal["public", "user", "org"]


class PublicAPIView(APIView):
    """No authentication at all (a stale Authorization header must not break login)."""

    access: ClassVar[Access] = "public"
    authentication_classes = []
    permission_classes = [AllowAny]


class UserAPIView(APIView):
    """Authenticated; needs no organization."""

    access: ClassVar[Access] = "user"
    permission_classes = [IsAuthenticated]


class UserViewSet(viewsets.GenericViewSet):
    access: ClassVar[Access] = "user"
    permission_classes = [IsAuthenticated]


def valid_body(serializer_class: type, request: Request) -> dict[str, Any]:
    """The request body validated by ``serializer_class``; invalid → 400 ``validation_error``."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def validated_as[T](serializer: Serializer[Any], shape: type[T]) -> T:
    """A valid serializer's data as the typed shape its service takes (``shape`` names the
    ``TypedDict`` the serializer's fields produce)."""
    return cast(T, dict(serializer.validated_data))

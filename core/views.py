"""Base views that need no organization: public and user-only. Every view declares its access
class (``access``): public, user (no org) or org-scoped (``orgs.api``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, cast

from rest_framework import viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from core.errors import PermissionDeniedError

Access = Literal["public", "user", "org"]


def refuse_api_key(request: Request, what: str = "use this endpoint: it is for people") -> None:
    """403 ``permission_denied`` for a request made with an org API key (its ``request.user`` carries
    the key: ``orgs.principal.KeyCaller``)."""
    if getattr(request.user, "api_key", None) is not None:
        raise PermissionDeniedError(f"An API key cannot {what}.")


class _UserOnly(APIView):
    """Authenticated; needs no organization. An org API key is refused (403) unless the view says
    ``allows_api_keys`` (read-only catalogues a program may need)."""

    access: ClassVar[Access] = "user"
    permission_classes = [IsAuthenticated]
    allows_api_keys: ClassVar[bool] = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not self.allows_api_keys:
            refuse_api_key(request)


class PublicAPIView(APIView):
    """No authentication at all (a stale Authorization header must not break login)."""

    access: ClassVar[Access] = "public"
    authentication_classes = []
    permission_classes = [AllowAny]


class UserAPIView(_UserOnly):
    """Authenticated; needs no organization."""


class UserViewSet(_UserOnly, viewsets.GenericViewSet):
    pass


def valid_body(serializer_class: type, request: Request) -> dict[str, Any]:
    """The request body validated by ``serializer_class``; invalid → 400 ``validation_error``."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def validated_as[T](serializer: Serializer[Any], shape: type[T]) -> T:
    """A valid serializer's data as the typed shape its service takes (``shape`` names the
    ``TypedDict`` the serializer's fields produce)."""
    return cast(T, dict(serializer.validated_data))

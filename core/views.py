"""Base views that need no organization: public and user-only. Every view declares its access
class (``access``): public, user (no org) or org-scoped (``orgs.api``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Protocol, cast

from django.db.models import Model
from rest_framework import viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
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

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
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


class UserViewSet[M: Model](_UserOnly, viewsets.GenericViewSet[M]):
    pass


# A body as a serializer validated it: each value is of the type its field makes (unknown here).
type ValidatedBody = dict[str, Any]


class Validating(Protocol):
    """A serializer, as far as reading a valid body goes (whatever its instance type)."""

    def is_valid(self, *, raise_exception: bool = False) -> bool: ...

    @property
    def validated_data(self) -> Mapping[str, object]: ...


def valid_body(serializer_class: Callable[..., Validating], request: Request) -> ValidatedBody:
    """The request body validated by ``serializer_class``; invalid → 400 ``validation_error``."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    validated: ValidatedBody = dict(serializer.validated_data)
    return validated


def validated_as[T](serializer: Validating, shape: type[T]) -> T:
    """A valid serializer's data as the typed shape its service takes (``shape`` names the
    ``TypedDict`` the serializer's fields produce)."""
    return cast(T, dict(serializer.validated_data))

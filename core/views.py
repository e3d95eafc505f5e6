"""Base views that need no organization: public and user-only. Every view declares its access
class (``access``): public, user (no org) or org-scoped (``orgs.api``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from rest_framework import viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.views import APIView

Access = Literal["public", "user", "org"]


class PublicAPIView(APIView):
    """No authentication at all (a stale Authorization header must not break login)."""

    access: ClassVar[Access] = "public"
    authentication_classes: ClassVar[list] = []
    permission_classes: ClassVar[list] = [AllowAny]


class UserAPIView(APIView):
    """Authenticated; needs no organization."""

    access: ClassVar[Access] = "user"
    permission_classes: ClassVar[list] = [IsAuthenticated]


class UserViewSet(viewsets.GenericViewSet):
    access: ClassVar[Access] = "user"
    permission_classes: ClassVar[list] = [IsAuthenticated]

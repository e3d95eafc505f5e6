"""The caller of an authenticated request, typed as the user it is."""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.request import Request

from accounts.models import User
from core.errors import NotAuthenticatedError


def current_user(request: HttpRequest | Request) -> User:
    """``request.user`` of a view that requires authentication: a ``User``, never anonymous."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticatedError
    return user

from __future__ import annotations

from core.errors import DomainError


class InvalidCredentialsError(DomainError):
    status = 401
    code = "invalid_credentials"
    default_detail = "The email or password is not correct."

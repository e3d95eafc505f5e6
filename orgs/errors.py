from __future__ import annotations

from core.errors import DomainError


class AlreadyMemberError(DomainError):
    status = 409
    code = "already_member"
    default_detail = "This person is already an active member of the organization."


class LastOwnerError(DomainError):
    status = 409
    code = "last_owner"
    default_detail = "An organization must keep at least one owner."

from __future__ import annotations

from core.errors import DomainError


class SpecialistInactiveError(DomainError):
    status = 409
    code = "specialist_inactive"
    default_detail = "This specialist is paused or archived and cannot chat."

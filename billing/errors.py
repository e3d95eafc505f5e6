from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from core.credits import credit_str
from core.errors import DomainError, ValidationFailed


class BillingRefusal(DomainError):
    """A call refused before it starts: 402 with ``scope`` and that scope's figures."""

    status = 402


class CircuitOpenError(BillingRefusal):
    code = "circuit_open"
    default_detail = "Spending is stopped: the organization's circuit breaker is open."

    def __init__(self, *, reason: str, opened_at: datetime | None) -> None:
        super().__init__(
            extra={
                "scope": "circuit",
                "reason": reason,
                "openedAt": opened_at.isoformat().replace("+00:00", "Z") if opened_at else None,
            }
        )


class InsufficientCreditsError(BillingRefusal):
    code = "insufficient_credits"

    def __init__(self, *, required: Decimal, available: Decimal) -> None:
        super().__init__(
            f"This call may cost up to {credit_str(required)} credits, but only {credit_str(available)} are available.",
            extra={"scope": "org_balance", "required": credit_str(required), "available": credit_str(available)},
        )


# What each budget scope is called in a refusal's detail.
BUDGET_NAMES = {
    "org_budget": "organization's monthly budget",
    "specialist_budget": "specialist's monthly credit limit",
    "member_budget": "member's monthly credit limit",
    "api_key_budget": "API key's monthly credit limit",
}


class BudgetExhaustedError(BillingRefusal):
    code = "budget_exhausted"

    def __init__(self, *, scope: str, limit: Decimal, spent: Decimal, reset_at: datetime) -> None:
        who = BUDGET_NAMES.get(scope, "monthly credit limit")
        super().__init__(
            f"The {who} of {credit_str(limit)} credits is used up until {reset_at.isoformat()}.",
            extra={
                "scope": scope,
                "limit": credit_str(limit),
                "spent": credit_str(spent),
                "resetAt": reset_at.isoformat().replace("+00:00", "Z"),
            },
        )


class UnknownModelError(ValidationFailed):
    def __init__(self, model: str) -> None:
        super().__init__("model", f"'{model}' is not an active model.")


# Every refusal of a call before it starts (402).
REFUSALS: tuple[type[BillingRefusal], ...] = (CircuitOpenError, InsufficientCreditsError, BudgetExhaustedError)

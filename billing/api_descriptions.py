"""What each operation of billing does, for API users (Markdown), where its view's own ``extend_schema``
says nothing; keyed by the operation's path and method as the schema names them
(``leancore.schema.descriptions``). The schema adds who may call it and every error status with its
codes from the error registry: a description says what happens, not which status or code answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/billing/credits/balance", "get"): (
        "The organization's credits: `balance`, `reserved` (held by calls in progress) and `available` "
        "(balance − reserved, what the next call's hold is checked against), with `monthlyBudget`, "
        "`spentThisPeriod` and the period's bounds (the calendar month, UTC)."
    ),
    ("/billing/credits/grant", "post"): (
        "Adds credits to the organization: either `amount` (> 0) or the `packageId` of an active package (its"
        " credits), with an optional `reason`; answers 201 with the `grant` ledger entry, and the balance "
        "rises at once. Only platform staff with the `billing.manage_credits` permission may call it, in any "
        "organization (not others, owners and staff without it included). With an `Idempotency-Key` (kept 24 "
        "h) a repeat of the same body returns the same entry; the same key with another body is refused."
    ),
    ("/billing/packages", "get"): (
        "The active credit packages, cheapest first, paginated, each with its credits and its price in cents."
        " A staff grant can name one with `packageId`."
    ),
    ("/billing/capacity", "get"): (
        "How long the credits last: `burnRatePerDay` (average usage over the last 7 days), `runwayDays` "
        "(available ÷ burn rate; null when nothing was used in those 7 days), and this period's spend against"
        " the budget (`budgetUsedPercent`, null without a budget). `bySpecialist` and `byModel` split this "
        "period's usage, largest first."
    ),
    ("/billing/alerts/acknowledge", "post"): (
        "Marks alerts as acknowledged (by the caller, now): `alertIds` of this organization (an unknown id is"
        " a validation error naming `alertIds`) or `all: true`. Answers 200 `{acknowledged}`, the number "
        "newly acknowledged; alerts already acknowledged are left as they were."
    ),
    ("/billing/circuit", "get"): (
        "The spending circuit breaker: `closed` lets spending through, `open` refuses every call that would "
        "spend credits with 402 `circuit_open`. When open, `reason`, `openedAt` and `openedBy` say why and "
        "since when."
    ),
    ("/billing/circuit/toggle", "post"): (
        "Sets the circuit to `state` (`open` or `closed`), or flips it when `state` is omitted, with an "
        "optional `reason`; answers 200 with the circuit. Opening it stops all of the organization's spending"
        " at once and raises a `circuit_opened` alert that is emailed to the billing email. A circuit opened "
        "by an operator (from the admin, or by platform staff through the API) can be closed only by an "
        "operator, not by an admin who is not platform staff."
    ),
}

"""Billing writes, one module per concern; import them from here."""

from billing.services.alerts import acknowledge_alerts, evaluate_alerts
from billing.services.circuit import is_operator, set_circuit
from billing.services.ledger import adjust_credits, grant_credits, open_account
from billing.services.metering import (
    Hold,
    active_rate,
    grow_hold,
    messages_with_open_holds,
    release,
    release_holds_of_message,
    release_stale_reservations,
    reserve,
    worst_case_cost,
)
from billing.services.rates import RateRow, load_bundled_rates, load_model_rates, parse_rate_rows
from billing.services.settlement import Charge, settle
from billing.services.spend import key_spent, member_spent, specialist_spent

__all__ = [
    "Charge",
    "Hold",
    "RateRow",
    "acknowledge_alerts",
    "active_rate",
    "adjust_credits",
    "evaluate_alerts",
    "grant_credits",
    "grow_hold",
    "is_operator",
    "key_spent",
    "load_bundled_rates",
    "load_model_rates",
    "member_spent",
    "messages_with_open_holds",
    "open_account",
    "parse_rate_rows",
    "release",
    "release_holds_of_message",
    "release_stale_reservations",
    "reserve",
    "set_circuit",
    "settle",
    "specialist_spent",
    "worst_case_cost",
]

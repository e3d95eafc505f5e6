"""The back office of credits, one module per admin page: credit accounts, the ledger, holds, model
rates, credit packages, alerts, circuits and their history; the organization's page with its billing
(``organizations``: balance, spend, alerts, circuit, the usage chart, money actions, the CSV for
invoicing) is registered by signup. Every change goes through ``billing.services`` with the operator
as actor, and is recorded in the audit trail and in the admin's own log (``actions``)."""

# Importing the pages registers them with the admin site (``admin.autodiscover`` imports this package).
from billing.admin import (  # noqa: F401
    alerts,
    circuit_events,
    circuits,
    credit_accounts,
    credit_packages,
    holds,
    ledger,
    model_rates,
)

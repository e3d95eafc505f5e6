"""What the organization floor announces to the floors above it (they listen; orgs imports none of
them)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the transaction that creates an organization and its owner, with ``organization``
# and ``owner``: a receiver that fails rolls the creation back. Billing opens the credit account
# (and grants the sign-up credits) here.
organization_created = Signal()

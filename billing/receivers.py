"""Billing's part in flows that start below it: a new organization gets its credit account, its
circuit and the sign-up credits, in the transaction that creates it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.dispatch import receiver

from billing.services import open_account
from orgs.models import Organization
from orgs.signals import organization_created


@receiver(organization_created, dispatch_uid="billing.open_account")
def open_account_for_new_organization(sender: Any, *, organization: Organization, **kwargs: Any) -> None:
    open_account(org=organization, signup_credits=settings.SIGNUP_CREDITS)

"""Opening an organization: the flow above both floors it composes. Orgs creates the organization
and its owner's membership (and, for a sign-up, the user); billing opens its credit account and
circuit with the sign-up credits. One transaction: a failure in either leaves nothing behind."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.models import User
from billing.services import open_account
from orgs import services as org_services
from orgs.models import Organization


def open_organization(*, name: str, owner: User, billing_email: str = "") -> Organization:
    """A new organization owned by ``owner``, with its credit account and the sign-up credits."""
    with transaction.atomic():
        org = org_services.create_organization(name=name, owner=owner, billing_email=billing_email)
        open_account(org=org, signup_credits=settings.SIGNUP_CREDITS)
    return org


def sign_up(*, organization_name: str, name: str, email: str, password: str) -> tuple[User, Organization]:
    """``POST /register``: the user, their organization (they are its owner) and its credits."""
    with transaction.atomic():
        user, org = org_services.register(
            organization_name=organization_name, name=name, email=email, password=password
        )
        open_account(org=org, signup_credits=settings.SIGNUP_CREDITS)
    return user, org

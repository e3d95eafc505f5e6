"""Demo content for ``seed_demo``; each app adds what it has."""

from __future__ import annotations

from accounts.models import User
from billing.selectors import balance
from leancore.credits import credit_str
from orgs.models import Organization


def seed_demo_content(*, org: Organization, owner: User) -> list[str]:
    return [f"credits:      {credit_str(balance(org=org).balance)}"]

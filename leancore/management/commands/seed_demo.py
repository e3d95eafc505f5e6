"""``manage.py seed_demo``: a demo organization to click through. Safe to run again."""

from __future__ import annotations

import os
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from leancore.demo import seed_demo_content
from orgs.models import Organization
from orgs.services import create_organization

DEMO_EMAIL = "demo@leancore.local"
DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Create (or refresh) a demo organization with an owner, specialists, a workspace, a project and tasks."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        password = os.environ.get("DEMO_PASSWORD", "demo-Passw0rd!")
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(email=DEMO_EMAIL, password=password, name="Demo Owner")
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        org = Organization.objects.filter(slug=DEMO_SLUG).first()
        if org is None:
            org = create_organization(name="Demo Company", owner=user)
            Organization.objects.filter(pk=org.pk).update(slug=DEMO_SLUG, monthly_budget=Decimal("50"))
            org.refresh_from_db()
        summary = seed_demo_content(org=org, owner=user)
        self.stdout.write(self.style.SUCCESS("Demo organization ready."))
        self.stdout.write(f"  organization: {org.name} (id {org.pk}, slug {org.slug})")
        self.stdout.write(f"  log in as:    {DEMO_EMAIL} / {password}")
        for line in summary:
            self.stdout.write(f"  {line}")

"""``manage.py seed_demo``: a demo organization to click through. Safe to run again."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from typing import TextIO, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rich.console import Console
from rich.progress import Progress, TaskID

from accounts.models import User
from leancore.demo import MEMBER_EMAIL, seed_demo_content, seed_demo_mcp, seed_member, seed_spend
from leancore.demo_mcp import DEFAULT_PORT
from orgs.models import Organization
from signup.services import open_organization

DEMO_EMAIL = "demo@leancore.local"
OPERATOR_EMAIL = "operator@leancore.local"
DEMO_SLUG = "demo"
STEPS = 4  # the seeding's steps, as its progress counts them


def default_mcp_url() -> str:
    """DEMO_MCP_URL, else the demo MCP server on loopback at DEMO_MCP_PORT (8765)."""
    port = os.environ.get("DEMO_MCP_PORT") or str(DEFAULT_PORT)
    return os.environ.get("DEMO_MCP_URL") or f"http://127.0.0.1:{port}/mcp"


def _done(progress: Progress, bar: TaskID, number: int, step: str) -> None:
    """Step ``number`` of STEPS is done: the bar moves on, and its line is written."""
    progress.update(bar, completed=number)
    progress.console.print(f"{number}/{STEPS} {step}", markup=False, highlight=False)


class Command(BaseCommand):
    help = (
        "Create (or refresh) a demo organization: an owner and a member, specialists, a workspace with a "
        "file, a project with tasks, a budget alert, and a connection to the demo MCP server."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--mcp-url",
            help="The demo MCP server (default: DEMO_MCP_URL, else http://127.0.0.1:$DEMO_MCP_PORT/mcp, port 8765).",
        )
        parser.add_argument(
            "--operator",
            action="store_true",
            help=f"Also an operator for the admin ({OPERATOR_EMAIL}, password DEMO_OPERATOR_PASSWORD); DEBUG only.",
        )
        parser.add_argument(
            "--i-know",
            action="store_true",
            dest="i_know",
            help=(
                "Seed with DEBUG off all the same: the demo accounts get the known demo password (DEMO_PASSWORD), "
                "so never on an install that anyone else can reach."
            ),
        )

    def handle(self, *args: object, **options: object) -> None:
        if options.get("operator") and not settings.DEBUG:  # a known password: development only
            raise CommandError("--operator makes a superuser with a known password: only with DEBUG=true.")
        if not settings.DEBUG and not options.get("i_know"):
            raise CommandError(
                "seed_demo gives the demo accounts a known password: only with DEBUG=true "
                "(or --i-know, on an install that nobody else can reach)."
            )
        password = os.environ.get("DEMO_PASSWORD", "demo-Passw0rd!")
        url = str(options.get("mcp_url") or default_mcp_url())
        summary: list[str] = []
        # a bar on a terminal (rich); a line per step there and in a log
        stream = cast("TextIO", options.get("stdout") or sys.stdout)  # call_command(stdout=…), else the terminal
        console = Console(file=stream, no_color=bool(options.get("no_color")))
        with Progress(console=console) as progress:
            bar = progress.add_task("Seeding the demo organization", total=STEPS)
            with transaction.atomic():
                user, org = self._owner_and_org(password)
                seed_member(org=org, password=password)
                _done(progress, bar, 1, "owner and member")
                summary += seed_demo_content(org=org, owner=user)
                _done(progress, bar, 2, "specialists, workspace, project")
                summary += seed_spend(org=org, owner=user)
                _done(progress, bar, 3, "spend and alerts")
            # outside the transaction: a network call (up to MCP_SYNC_TIMEOUT_SECONDS) holds no lock
            summary += seed_demo_mcp(org=org, url=url)
            _done(progress, bar, 4, "demo MCP server")
        self.stdout.write(self.style.SUCCESS("Demo organization ready."))
        self.stdout.write(f"  organization: {org.name} (id {org.pk}, slug {org.slug})")
        self.stdout.write(f"  log in as:    {DEMO_EMAIL} / {password}  (owner)")
        self.stdout.write(f"  member:       {MEMBER_EMAIL} / {password}")
        for line in summary:
            self.stdout.write(f"  {line}")
        if options.get("operator"):
            operator_password = os.environ.get("DEMO_OPERATOR_PASSWORD", "operator-Passw0rd!")
            operator = User.objects.filter(email=OPERATOR_EMAIL).first() or User(email=OPERATOR_EMAIL)
            operator.name, operator.is_staff, operator.is_superuser, operator.is_active = "Operator", True, True, True
            operator.set_password(operator_password)
            operator.save()
            self.stdout.write(f"  admin:        {OPERATOR_EMAIL} / {operator_password}  (operator, /admin/)")

    def _owner_and_org(self, password: str) -> tuple[User, Organization]:
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(email=DEMO_EMAIL, password=password, name="Demo Owner")
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        org = Organization.objects.filter(slug=DEMO_SLUG).first()
        if org is None:
            org = open_organization(name="Demo Company", owner=user)
            Organization.objects.filter(pk=org.pk).update(slug=DEMO_SLUG, monthly_budget=Decimal("50"))
            org.refresh_from_db()
        return user, org

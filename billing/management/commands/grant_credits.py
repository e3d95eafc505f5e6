from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.services import grant_credits
from core.credits import credit_str
from core.errors import DomainError
from orgs.commands import find_org


class Command(BaseCommand):
    help = "Grant credits to an organization (ledgered like the API's staff grant)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="Organization id or slug.")
        parser.add_argument("--amount", required=True, help="Credits, e.g. 250 or 12.5.")
        parser.add_argument("--reason", default="Operator grant")

    def handle(self, *args: object, **options: str) -> None:
        org = find_org(options["org"])
        try:
            amount = Decimal(options["amount"])
        except InvalidOperation as exc:
            raise CommandError("--amount must be a number.") from exc
        exponent = amount.as_tuple().exponent  # "n", "N" or "F" for NaN and infinity
        if not isinstance(exponent, int):
            raise CommandError("--amount must be a number.")
        if exponent < -6:
            raise CommandError("--amount takes at most 6 decimals.")
        try:
            entry = grant_credits(org=org, amount=amount, reason=options["reason"], actor=None)
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Granted {credit_str(entry.amount)} credits to {org.slug}; balance {credit_str(entry.balance_after)}."
            )
        )

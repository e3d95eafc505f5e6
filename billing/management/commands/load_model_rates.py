from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.services import load_model_rates


class Command(BaseCommand):
    help = "Upsert model rates from a JSON list of {model, provider, displayName, inputCreditsPerMillion, …}."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path to the JSON file.")

    def handle(self, *args: object, **options: object) -> None:
        path = Path(str(options["file"]))
        try:
            rows = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"Could not read {path}: {exc}") from exc
        if not isinstance(rows, list):
            raise CommandError("The file must hold a JSON list of rates.")
        try:
            created, updated = load_model_rates(rows=rows)
        except (ValueError, KeyError, ArithmeticError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{created} rates created, {updated} updated."))

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from billing.services import RateRow, load_model_rates, parse_rate_rows
from core.progress import Progress

CHUNK = 200


def _chunks(rows: list[RateRow], size: int) -> list[list[RateRow]]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]


class Command(BaseCommand):
    help = (
        "Upsert model rates from a JSON list of {model, provider, displayName, inputCreditsPerMillion, …}, "
        "all or nothing, with a progress bar."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path to the JSON file.")

    def handle(self, *args: object, **options: object) -> None:
        path = Path(str(options["file"]))
        try:
            rows = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"Could not read {path}: {exc}") from exc
        try:
            rates = parse_rate_rows(rows)  # every row checked before anything is written
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        created = updated = 0
        with transaction.atomic(), Progress(self.stdout, len(rates)) as progress:  # all rows or none
            for chunk in _chunks(rates, CHUNK):
                added, changed = load_model_rates(rows=chunk)
                created, updated = created + added, updated + changed
                progress.step(f"rates ({created} created, {updated} updated)", advance=len(chunk))
        self.stdout.write(self.style.SUCCESS(f"{created} rates created, {updated} updated."))

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from billing.services import load_model_rates
from core.progress import Progress

CHUNK = 200
ROW = re.compile(r"^Row (\d+):")


def _chunks(rows: list[Any], size: int) -> list[list[Any]]:
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
        if not isinstance(rows, list):
            raise CommandError("The file must hold a JSON list of rates.")
        created = updated = 0
        offset = 0
        try:
            with transaction.atomic(), Progress(self.stdout, len(rows)) as progress:  # all rows or none
                for chunk in _chunks(rows, CHUNK):
                    added, changed = load_model_rates(rows=chunk)
                    created, updated = created + added, updated + changed
                    offset += len(chunk)
                    progress.step(f"rates ({created} created, {updated} updated)", advance=len(chunk))
        except (ValueError, KeyError, ArithmeticError) as exc:
            # the service numbers rows within its chunk: say the row of the file
            message = ROW.sub(lambda m: f"Row {int(m.group(1)) + offset}:", str(exc))
            raise CommandError(message) from exc
        self.stdout.write(self.style.SUCCESS(f"{created} rates created, {updated} updated."))

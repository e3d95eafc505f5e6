from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rich.console import Console
from rich.progress import Progress

from billing.services import RateRow, load_model_rates, parse_rate_rows

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
        # a bar on a terminal (rich); a line per chunk there and in a log
        stream = cast("TextIO", options.get("stdout") or sys.stdout)  # call_command(stdout=…), else the terminal
        console = Console(file=stream, no_color=bool(options.get("no_color")))
        with transaction.atomic(), Progress(console=console) as progress:  # all rows or none
            bar = progress.add_task("Loading model rates", total=len(rates))
            for chunk in _chunks(rates, CHUNK):
                added, changed = load_model_rates(rows=chunk)
                created, updated = created + added, updated + changed
                progress.update(bar, advance=len(chunk))
                done = created + updated
                line = f"{done}/{len(rates)} rates ({created} created, {updated} updated)"
                progress.console.print(line, markup=False, highlight=False)
        self.stdout.write(self.style.SUCCESS(f"{created} rates created, {updated} updated."))

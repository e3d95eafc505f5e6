from __future__ import annotations

import sys
from typing import TextIO, cast

from django.core.management.base import BaseCommand, CommandParser
from rich.console import Console
from rich.progress import Progress

from core.errors import DomainError
from mcps.models import Connection
from mcps.services import sync_connection
from orgs.commands import find_org


class Command(BaseCommand):
    help = "Sync the tools of MCP connections (one organization or all), with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="Organization id or slug (default: every organization).")

    def handle(self, *args: object, **options: object) -> None:
        connections = (
            Connection.objects.across_orgs("the operator's command syncs every org")
            .filter(enabled=True)
            .select_related("organization")
            .order_by("created_at")
        )
        if options.get("org"):
            connections = connections.for_org(find_org(str(options["org"])))
        items = list(connections)
        total = len(items)
        failures = 0
        # a bar on a terminal (rich); a line per connection there and in a log
        stream = cast("TextIO", options.get("stdout") or sys.stdout)  # call_command(stdout=…), else the terminal
        console = Console(file=stream, no_color=bool(options.get("no_color")))
        with Progress(console=console) as progress:
            bar = progress.add_task("Syncing MCP connections", total=total)
            for done, connection in enumerate(items, start=1):
                name = f"{connection.organization.slug}/{connection.name}"
                progress.update(bar, description=f"{name} syncing…")
                try:
                    result = sync_connection(connection=connection)
                    line = f"ok: +{result.added} ~{result.updated} -{result.removed}"
                except DomainError as exc:
                    failures += 1
                    line = f"error: {exc.detail}"
                progress.console.print(f"{done}/{total} {name} {line}", markup=False, highlight=False)
                progress.update(bar, advance=1, description="Syncing MCP connections")
        self.stdout.write(self.style.SUCCESS(f"Synced {total - failures} of {total} connections."))
        if failures:
            sys.exit(1)

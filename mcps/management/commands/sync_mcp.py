from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandParser

from core.errors import DomainError
from core.progress import Progress
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
        with Progress(self.stdout, total) as progress:
            for connection in items:
                name = f"{connection.organization.slug}/{connection.name}"
                progress.step(f"{name} syncing…", advance=0)
                try:
                    result = sync_connection(connection=connection)
                    line = f"ok: +{result.added} ~{result.updated} -{result.removed}"
                except DomainError as exc:
                    failures += 1
                    line = f"error: {exc.detail}"
                    if progress.tty:
                        progress.note(f"{name} {line}")
                progress.step(f"{name} {line}")
        self.stdout.write(self.style.SUCCESS(f"Synced {total - failures} of {total} connections."))
        if failures:
            sys.exit(1)

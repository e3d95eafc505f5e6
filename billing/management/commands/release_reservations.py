from __future__ import annotations

from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from billing.services import release_stale_reservations


class Command(BaseCommand):
    help = "Release credit holds whose call never settled (e.g. a crashed worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=int, default=None, help="Seconds; default RESERVATION_TTL_SECONDS (900)."
        )

    def handle(self, *args: object, **options: object) -> None:
        cutoff: datetime | None = None
        older_than = options["older_than"]
        if isinstance(older_than, int):
            cutoff = timezone.now() - timedelta(seconds=older_than)
        count = release_stale_reservations(older_than=cutoff)
        self.stdout.write(self.style.SUCCESS(f"Released {count} stale reservations."))

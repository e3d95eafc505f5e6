"""``manage.py db_worker``: django-tasks-db's worker, serving every queue by default and
making sure the periodic maintenance job is scheduled."""

from __future__ import annotations

from django.core.management.base import CommandParser
from django_tasks_db.management.commands.db_worker import Command as BaseWorkerCommand

from leancore.maintenance import ensure_scheduled


class Command(BaseWorkerCommand):
    help = "Run the background worker (all queues by default) and the periodic maintenance job."

    def add_arguments(self, parser: CommandParser) -> None:  # type: ignore[override]
        super().add_arguments(parser)
        parser.set_defaults(queue_name="*")

    def handle(self, *args: object, **options: object) -> None:
        if not options.get("batch"):
            ensure_scheduled()
        super().handle(*args, **options)  # type: ignore[arg-type]

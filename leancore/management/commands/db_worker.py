"""``manage.py db_worker``: django-tasks-db's worker, serving every queue by default and
making sure the periodic maintenance job is scheduled. One process runs ``--concurrency`` jobs at
once (default WORKER_TURN_CONCURRENCY), each on a thread of its own."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands.db_worker import Command as BaseWorkerCommand
from django_tasks_db.management.commands.db_worker import logger as tasks_logger

from leancore.long_lived import keep_startup_objects_out_of_collections
from leancore.maintenance import ensure_scheduled
from leancore.worker import WorkerPool


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseWorkerCommand):
    help = "Run the background worker (all queues by default, several jobs at once) and the periodic maintenance job."

    def add_arguments(self, parser: CommandParser) -> None:  # type: ignore[override]  # the base command's differs
        super().add_arguments(parser)
        parser.set_defaults(queue_name="*")
        parser.add_argument(
            "--concurrency",
            type=_positive,
            default=None,
            help="Jobs (turns) run at once by this process (default: WORKER_TURN_CONCURRENCY).",
        )

    def handle(self, *args: object, **options: Any) -> None:  # argparse's values, typed by each option
        self.configure_logging(options["verbosity"])
        batch, reload = options["batch"], options["reload"]
        if reload and batch:
            tasks_logger.warning("Warning: --reload and --batch cannot be specified together. Disabling autoreload.")
            reload = False
        queue_names = options["queue_name"].split(",")
        excluded = options["exclude_queues"].split(",") if options["exclude_queues"] else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        if not batch:
            ensure_scheduled()
        pool = WorkerPool(
            concurrency=options["concurrency"] or settings.WORKER_TURN_CONCURRENCY,
            worker_id=options["worker_id"],
            queue_names=queue_names,
            interval=options["interval"],
            batch=batch,
            backend_name=options["backend_name"],
            startup_delay=options["startup_delay"],
            max_tasks=options["max_tasks"],
            excluded_queue_names=excluded,
        )
        keep_startup_objects_out_of_collections()
        if reload:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                pool.configure_signals()  # only the child process
            run_with_reloader(pool.run)
        else:
            pool.configure_signals()
            pool.run()

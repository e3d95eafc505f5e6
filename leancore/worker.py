"""The background worker as a thread of the server process (EMBEDDED_WORKER=true).

For the single-process quick start: async chat turns then publish to the same in-memory
channel layer the WebSocket consumers listen on. Production runs ``manage.py db_worker``
processes and Redis instead."""

from __future__ import annotations

import logging
import threading
import uuid

from django_tasks_db.management.commands.db_worker import Worker

from leancore.maintenance import ensure_scheduled

logger = logging.getLogger(__name__)
_started = threading.Event()


def start_embedded_worker(interval: float = 0.2) -> bool:
    if _started.is_set():
        return False
    _started.set()

    def run() -> None:
        try:
            ensure_scheduled()
            Worker(
                queue_names=["*"],
                interval=interval,
                batch=False,
                backend_name="default",
                startup_delay=False,
                max_tasks=None,
                worker_id=f"embedded-{uuid.uuid4().hex[:16]}",
                excluded_queue_names=[],
            ).run()
        except Exception:
            logger.exception("The embedded worker stopped")

    threading.Thread(target=run, name="leancore-embedded-worker", daemon=True).start()
    logger.info("Embedded background worker started")
    return True

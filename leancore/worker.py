"""The background worker: WORKER_TURN_CONCURRENCY django-tasks-db workers in one process, one job
(one turn) at a time each, so that a process runs that many turns at once (``chat.slots`` shares
them fairly between organizations), and WEBHOOK_WORKER_CONCURRENCY more that serve only the webhook
deliveries' queue (``webhooks.jobs``): a slow endpoint never holds a turn's slot.

As a thread of the server process (EMBEDDED_WORKER=true), for the single-process quick start:
async chat turns then publish to the same in-memory channel layer the WebSocket consumers listen
on. Production runs ``manage.py db_worker`` processes and Redis instead."""

from __future__ import annotations

import functools
import logging
import operator
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from types import FrameType
from typing import TypedDict, Unpack

from django.conf import settings
from django.db import close_old_connections, connections
from django.db.models import Q
from django.tasks.base import TaskResultStatus
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult, get_date_max

from chat.slots import DEFER_SECONDS, set_capacity
from core import tracing
from leancore.maintenance import ensure_scheduled
from webhooks.jobs import QUEUE as WEBHOOK_QUEUE

logger = logging.getLogger(__name__)
_started = threading.Event()
JOIN_SECONDS = 0.5  # the main thread wakes this often (signals are handled between waits)


class WorkerOptions(TypedDict):
    """What django-tasks-db's ``Worker`` takes besides its id."""

    queue_names: list[str]
    excluded_queue_names: list[str]
    interval: float
    batch: bool
    backend_name: str
    startup_delay: bool
    max_tasks: int | None


def split_queues(options: WorkerOptions) -> tuple[WorkerOptions | None, WorkerOptions | None]:
    """The options of the turn workers and of the webhook delivery workers (None: this process serves
    no such queue). The webhooks queue is served only by its own workers."""
    queues, excluded = options["queue_names"], options["excluded_queue_names"]
    everything = "*" in queues
    turns: WorkerOptions | None = {**options, "excluded_queue_names": [*excluded, WEBHOOK_QUEUE]}
    if not everything:
        rest = [name for name in queues if name != WEBHOOK_QUEUE]
        turns = {**options, "queue_names": rest} if rest else None
    serves_webhooks = WEBHOOK_QUEUE in queues or (everything and WEBHOOK_QUEUE not in excluded)
    webhooks: WorkerOptions | None = (
        {**options, "queue_names": [WEBHOOK_QUEUE], "excluded_queue_names": []} if serves_webhooks else None
    )
    return turns, webhooks


class TracedWorker(Worker):
    """django-tasks-db's worker; while tracing is on, each job runs in a span of its own, in the trace
    of the request that queued it when the job carries it (``core.tracing.job_context``)."""

    def run_task(self, db_task_result: DBTaskResult[..., object]) -> None:
        if not tracing.ENABLED:
            return super().run_task(db_task_result)
        with tracing.job_span(
            task=db_task_result.task_path,
            queue=db_task_result.queue_name,
            job_id=str(db_task_result.pk),
            carrier=tracing.carried_context((db_task_result.args_kwargs or {}).get("kwargs") or {}),
        ) as span:
            super().run_task(db_task_result)
            if db_task_result.status == TaskResultStatus.FAILED:
                tracing.job_failed(span, db_task_result.exception_class_path)
        return None


class WorkerPool:
    """``concurrency`` workers, each on its own thread (and database connection), sharing the queue:
    each claims its jobs with ``SKIP LOCKED``, so no job runs twice. SIGINT/SIGTERM stop them all
    once their jobs end; a second signal ends the process at once."""

    def __init__(self, *, concurrency: int, worker_id: str, **options: Unpack[WorkerOptions]) -> None:
        prefix = worker_id[:56]
        tracing.configure()  # this process's once (the server's, for an embedded worker)
        set_capacity(max(1, concurrency))
        turns, webhooks = split_queues(options)
        self.workers = [
            TracedWorker(worker_id=f"{prefix}-{slot}", **turns) for slot in range(max(1, concurrency)) if turns
        ]
        if webhooks:  # deliveries on threads of their own: a slow endpoint never holds a turn's slot
            count = settings.WEBHOOK_WORKER_CONCURRENCY
            self.workers += [TracedWorker(worker_id=f"{prefix}-w{slot}", **webhooks) for slot in range(count)]

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        if not any(worker.running for worker in self.workers):
            logger.warning("Received %s again: stopping now.", signal.strsignal(signum))
            sys.exit(1)
        logger.warning("Received %s: stopping once the running jobs end.", signal.strsignal(signum))
        for worker in self.workers:
            worker.running = False

    def configure_signals(self) -> None:
        for name in ("SIGINT", "SIGTERM", "SIGQUIT"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self.shutdown)

    def start(self, name: str = "worker-slot") -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._run, args=(worker,), name=f"{name}-{slot}", daemon=True)
            for slot, worker in enumerate(self.workers)
        ]
        for thread in threads:
            thread.start()
        return threads

    @staticmethod
    def _run(worker: Worker) -> None:
        try:
            worker.run()
        except Exception:
            logger.exception("Worker %s stopped", worker.worker_id)
        finally:
            connections.close_all()  # this thread's (a batch worker returns holding one): back to the pool

    def run(self) -> None:
        """Runs until every worker stopped (a signal, or ``--batch`` with nothing left to do: a job
        put back for a moment, a deferred turn, is waited for)."""
        while True:
            threads = self.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(JOIN_SECONDS)
            due = self._deferred_due() if all(worker.batch and worker.running for worker in self.workers) else None
            if due is None:
                return
            time.sleep(max(0.0, (due - timezone.now()).total_seconds()))

    def _served(self) -> Q:
        """The jobs this pool's workers take (their queues)."""
        parts = []
        for worker in self.workers:
            mine = Q() if worker.process_all_queues else Q(queue_name__in=worker.queue_names)
            if worker.excluded_queue_names:
                mine &= ~Q(queue_name__in=worker.excluded_queue_names)
            if not mine:
                return Q()
            parts.append(mine)
        return functools.reduce(operator.or_, parts)

    def _deferred_due(self) -> datetime | None:
        """In ``--batch``: when the next job of this pool's queues is due: one put back for a moment
        (within DEFER_SECONDS), or at once one that a job enqueued after its queue's workers had
        stopped (a turn's webhook delivery)."""
        soon = timezone.now() + timedelta(seconds=2 * DEFER_SECONDS)
        ready = DBTaskResult.objects.filter(
            self._served(), status=TaskResultStatus.READY, backend_name=self.workers[0].backend_name
        )
        try:
            if ready.filter(run_after=get_date_max()).exists():
                return timezone.now()
            return ready.filter(run_after__lte=soon).order_by("run_after").values_list("run_after", flat=True).first()
        finally:
            close_old_connections()


def start_embedded_worker(interval: float = 0.2) -> bool:
    if _started.is_set():
        return False
    _started.set()
    pool = WorkerPool(
        concurrency=settings.WORKER_TURN_CONCURRENCY,
        worker_id=f"embedded-{uuid.uuid4().hex[:16]}",
        queue_names=["*"],
        interval=interval,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        excluded_queue_names=[],
    )

    def run() -> None:
        try:
            ensure_scheduled()
        except Exception:
            logger.exception("The maintenance job could not be scheduled")
        pool.start(name="leancore-embedded-worker")

    threading.Thread(target=run, name="leancore-embedded-worker", daemon=True).start()
    logger.info("Embedded background worker started (%s slots)", settings.WORKER_TURN_CONCURRENCY)
    return True

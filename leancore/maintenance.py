"""Periodic upkeep run by the background worker: a job that reschedules itself."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.tasks import task
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from billing.services import release_stale_reservations
from chat.metering import release_holds_of_ended_turns
from chat.services import fail_overdue_queued_turns, fail_stuck_turns
from tasks.services import recover_failed_runs
from webhooks.jobs import purge_old_events, recover_stalled_deliveries

logger = logging.getLogger(__name__)

TASK_PATH = "leancore.maintenance.maintenance"


def run_upkeep() -> dict[str, int]:
    """Each app's periodic work, in one place."""
    return {
        "failed_stuck_turns": fail_stuck_turns(),
        # before task runs are recovered: a task whose run expired goes back to todo in this pass
        "expired_queued_turns": fail_overdue_queued_turns(),
        # a turn's holds last while it is queued or running; holds outside any turn, RESERVATION_TTL
        "released_reservations": release_holds_of_ended_turns() + release_stale_reservations(),
        "recovered_task_runs": recover_failed_runs(),
        "recovered_webhook_deliveries": recover_stalled_deliveries(),
        "purged_webhook_events": purge_old_events(),
    }


@task()
def maintenance() -> dict[str, int]:
    """The next run is enqueued before this one does any work: a worker killed in the middle of
    it leaves the chain intact (the next run is waiting), and the work is safe to repeat."""
    interval = timedelta(seconds=settings.MAINTENANCE_INTERVAL_SECONDS)
    maintenance.using(run_after=timezone.now() + interval).enqueue()
    return run_upkeep()


def ensure_scheduled() -> bool:
    """Enqueues the maintenance chain unless a run is already waiting (a run left RUNNING by a
    killed worker does not count). Returns True if it enqueued."""
    waiting = DBTaskResult.objects.filter(task_path=TASK_PATH, status="READY").exists()
    if waiting:
        return False
    maintenance.enqueue()
    return True

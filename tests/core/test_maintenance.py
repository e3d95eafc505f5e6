from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from billing import services
from billing.models import CreditAccount, Reservation
from leancore.maintenance import TASK_PATH, ensure_scheduled, maintenance

pytestmark = pytest.mark.django_db


def test_maintenance_releases_stale_holds_and_reschedules_itself(org):
    hold = services.reserve(org=org, model="local", input_tokens=10, max_output_tokens=10)
    Reservation.all_orgs.filter(pk=hold.reservation_id).update(created_at=timezone.now() - timedelta(hours=1))
    assert maintenance.call() == {
        "failed_stuck_turns": 0,
        "expired_queued_turns": 0,
        "released_reservations": 1,
        "recovered_task_runs": 0,
        "recovered_webhook_deliveries": 0,
        "purged_webhook_events": 0,
    }
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    follow_up = DBTaskResult.objects.get(task_path=TASK_PATH)
    assert follow_up.run_after > timezone.now() + timedelta(seconds=30)


def test_ensure_scheduled_keeps_one_chain(db):
    assert ensure_scheduled() is True
    assert ensure_scheduled() is False
    assert DBTaskResult.objects.filter(task_path=TASK_PATH).count() == 1

"""A worker process's turn slots, shared fairly between organizations.

A worker process runs up to WORKER_TURN_CONCURRENCY jobs at once (one per thread). When it picks up
a queued turn of an org that already runs its share here (half of the slots, at least one) while
another org's queued turn waits that could run, the turn is deferred: its job goes back to the
queue, behind the others, and the slot is left for them. An org alone in the queue may use every
slot; a turn is never refused, only put back."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass

from django.conf import settings

from chat.models import Message

DEFER_SECONDS = 1.0  # how long a deferred turn's job waits before it is tried again
DEFERRED_PRIORITY = -1  # a deferred job comes after the jobs of the same moment that were not

_lock = threading.Lock()
_running: Counter[uuid.UUID] = Counter()  # this process's running turns, per org
_capacity: int | None = None  # the process's slots, as its worker was started (else the setting)


@dataclass(frozen=True, slots=True)
class Admission:
    """A queued turn's place in this process: ``org_id`` counted while it runs (None: the message is
    no longer queued, nothing to count), or ``deferred``."""

    org_id: uuid.UUID | None
    deferred: bool = False


def set_capacity(slots: int) -> None:
    """The number of turns this process runs at once (its worker's ``--concurrency``)."""
    global _capacity  # noqa: PLW0603 - one value per process, set once when its worker starts
    _capacity = slots


def capacity() -> int:
    return _capacity or settings.WORKER_TURN_CONCURRENCY


def share() -> int:
    """The slots one org may take while others wait: half of them, at least one."""
    return max(1, capacity() // 2)


def _others_waiting(org_id: uuid.UUID, cap: int) -> bool:
    """Whether another org has a queued turn that a free slot could run here (one below its share)."""
    waiting = (
        Message.objects.across_orgs("the other orgs with turns waiting")
        .filter(role=Message.Role.ASSISTANT, status=Message.Status.QUEUED)
        .exclude(session__organization_id=org_id)
        .order_by()  # DISTINCT over the org alone (a default ordering's column would join it)
        .values_list("session__organization_id", flat=True)
        .distinct()
    )
    # at most concurrency // cap orgs can be at their share here: one more is enough to look at
    return any(_running[other] < cap for other in waiting[: capacity() + 1])


def admit(*, message_id: uuid.UUID) -> Admission:
    """Takes a slot for a queued turn's org, or defers the turn (see the module)."""
    org_id = (
        Message.objects.across_orgs("the worker's job names its message")
        .filter(pk=message_id, status=Message.Status.QUEUED)
        .values_list("session__organization_id", flat=True)
        .first()
    )
    if org_id is None:
        return Admission(None)
    cap = share()
    with _lock:
        if _running[org_id] >= cap and _others_waiting(org_id, cap):
            return Admission(org_id, deferred=True)
        _running[org_id] += 1
    return Admission(org_id)


def leave(admission: Admission) -> None:
    """Gives the slot back once the turn ended (or could not start)."""
    if admission.org_id is None or admission.deferred:
        return
    with _lock:
        _running[admission.org_id] -= 1
        if _running[admission.org_id] <= 0:
            del _running[admission.org_id]


def running() -> dict[uuid.UUID, int]:
    """This process's running turns per org (for its tests and diagnostics)."""
    with _lock:
        return dict(_running)

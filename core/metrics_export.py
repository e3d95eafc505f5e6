"""The scrape: ``GET /metrics`` (Prometheus text, guarded by ``METRICS_TOKEN``) and the multi-process
directory ``manage.py serve`` gives its children.

Under ``serve`` every child writes its metrics to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape,
whichever server process answers it, adds up every process's files (prometheus-client's
``MultiProcessCollector``): counters and histograms of every process, living or dead, and the
WebSocket gauge of the living ones (serve removes a dead child's live-gauge file). Without that
directory a scrape reads the process's own registry. Either way it shows every family, those with
no sample yet included, and ``leancore_jobs_waiting``, read from the jobs table when scraped."""

from __future__ import annotations

import hmac
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.tasks import task_backends
from django_tasks_db.models import DBTaskResult
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from core import metrics
from core.errors import (
    MethodNotAllowedError,
    NotAuthenticatedError,
    NotFoundError,
    TokenNotValidError,
    error_response,
)

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


# --- the multi-process directory (manage.py serve) ----------------------------------------------


@dataclass(frozen=True)
class MultiprocessDirectory:
    """Where serve's children write their metrics. ``owned``: made by serve (removed when it stops);
    else the operator's ``PROMETHEUS_MULTIPROC_DIR`` (only its metric files are ever removed)."""

    path: Path
    owned: bool

    @classmethod
    def prepare(cls) -> MultiprocessDirectory:
        """``PROMETHEUS_MULTIPROC_DIR`` when set (made if missing), else a new temporary directory;
        emptied of metric files either way (a previous run's processes count no more)."""
        configured = os.environ.get(MULTIPROC_ENV)
        if configured:
            directory = cls(Path(configured), owned=False)
            directory.path.mkdir(parents=True, exist_ok=True)
        else:
            directory = cls(Path(tempfile.mkdtemp(prefix="leancore-metrics-")), owned=True)
        for stale in directory.path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return directory

    def process_died(self, pid: int) -> None:
        """A child ended: its live gauges (its WebSockets) count no more; its counters stay in the totals."""
        mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated

    def remove(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


# --- what a scrape shows ------------------------------------------------------------------------


def _waiting_jobs() -> dict[str, int]:
    """Jobs ready to run and not yet picked up, per queue (every configured queue, 0 when empty); one
    statement on the jobs table's partial index of ready rows."""
    counts = {queue: 0 for backend in task_backends.all() for queue in backend.queues}
    ready = DBTaskResult.objects.ready().order_by().values_list("queue_name").annotate(waiting=Count("pk"))
    for queue, waiting in ready:
        counts[queue] = waiting
    return counts


def _jobs_waiting() -> Metric:
    family = GaugeMetricFamily(
        metrics.JOBS_WAITING_NAME, "Background jobs ready to run and not yet picked up, by queue.", labels=["queue"]
    )
    try:
        counts = _waiting_jobs()
    except DatabaseError as exc:  # the database is away: the rest of the scrape still answers
        logger.warning("leancore_jobs_waiting not read: %r", exc)
        return family
    for queue, waiting in sorted(counts.items()):
        family.add_metric([queue], waiting)
    return family


class Scrape:
    """One scrape's families: every process's (the multi-process directory) or this process's."""

    def collect(self) -> Iterator[Metric]:
        declared = list(metrics.REGISTRY.collect())
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            files = [str(file) for file in Path(path).glob("*.db")]
            found = {family.name: family for family in MultiProcessCollector.merge(files, accumulate=True)}  # type: ignore[no-untyped-call]  # unannotated
        else:
            found = {family.name: family for family in declared}
        for family in declared:  # a family no process has recorded yet is shown empty
            yield found.get(family.name) or Metric(family.name, family.documentation, family.type)
        yield _jobs_waiting()


def scrape() -> bytes:
    return generate_latest(Scrape())  # any object with collect() will do


# --- GET /metrics --------------------------------------------------------------------------------


def _bearer(request: HttpRequest) -> bytes:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" else b""


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text for a caller with ``Authorization: Bearer <METRICS_TOKEN>``; 404 (as for any
    unknown path) while METRICS_TOKEN is unset; 401 ``not_authenticated`` without a bearer token,
    ``token_not_valid`` for a wrong one (compared in constant time)."""
    token = settings.METRICS_TOKEN
    if not token:
        return error_response(NotFoundError())
    given = _bearer(request)
    if not hmac.compare_digest(given, token.encode()):
        if not given:
            return error_response(NotAuthenticatedError("A bearer METRICS_TOKEN is required."))
        return error_response(TokenNotValidError("This is not the METRICS_TOKEN."))
    if request.method not in ("GET", "HEAD"):
        refused = error_response(MethodNotAllowedError())
        refused["Allow"] = "GET, HEAD"
        return refused
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_PLAIN_0_0_4, headers={"Cache-Control": "no-store"})


metrics_view.access = "public"  # type: ignore[attr-defined]  # no user credential: its own token
metrics_view.csrf_exempt = True  # type: ignore[attr-defined]  # the token decides, before any method check

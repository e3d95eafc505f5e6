"""Benchmark: REST lists on an org with many rows, side by side with ``GET /health`` on the same server.

Usage:  .venv/bin/python bench/rest_lists.py [--rows 10000] [--concurrency 10] [--seconds 5]

Migrates a benchmark database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/leancore_bench), gives one org ``--rows`` specialists, chat
sessions, ledger entries and tasks, starts one Daphne process on the default settings (a bounded
connection pool; Redis when BENCH_REDIS_URL answers) and, from this separate process, keeps
``--concurrency`` requests in flight against each endpoint for ``--seconds``: requests per second,
p50/p99 latency and errors, each list next to the cost of the server's cheapest answer
(``/health``), measured in one-second slices alternating with the list's own (``× /health``: the
list's requests per second over those of ``/health`` beside it). Lists are paginated, so their cost
should not grow with the rows (the query count per request is asserted in
``tests/core/test_query_counts.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, ensure_database

os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"

import httpx

LISTS = ["/specialists", "/api/chat/sessions", "/billing/credits/usage", "/tasks"]
# each list at the default page size and at the largest (100), between two health checks
ENDPOINTS = ["/health", *LISTS, *(f"{path}?pageSize=100" for path in LISTS), "/health"]


def populate(rows: int) -> str:
    """One org with ``rows`` of each listed kind; returns its owner's access token."""
    import django

    django.setup()
    from accounts.models import User
    from accounts.services import issue_tokens
    from billing.models import LedgerEntry
    from chat.models import ChatSession
    from signup.services import open_organization
    from specialists.models import Specialist
    from tasks.models import Task

    owner = User.objects.create_user(email=f"lists-{time.time_ns()}@example.com", password="x-Bench-pass-1")
    org = open_organization(name="Lists bench", owner=owner)
    specialists = Specialist.all_orgs.bulk_create(
        [Specialist(organization=org, name=f"S{n}", model="local") for n in range(rows)], batch_size=2000
    )
    ChatSession.all_orgs.bulk_create(
        [
            ChatSession(organization=org, specialist=specialists[n % len(specialists)], created_by=owner, title=f"{n}")
            for n in range(rows)
        ],
        batch_size=2000,
    )
    LedgerEntry.all_orgs.bulk_create(
        [
            LedgerEntry(organization=org, kind="grant", amount=Decimal(1), balance_after=Decimal(n + 1))
            for n in range(rows)
        ],
        batch_size=2000,
    )
    Task.all_orgs.bulk_create(
        [Task(organization=org, title=f"T{n}", created_by=owner) for n in range(rows)], batch_size=2000
    )
    analyze_after_bulk_load()
    return issue_tokens(user=owner).access


def analyze_after_bulk_load() -> None:
    """The tables just filled as autovacuum leaves them a minute later (statistics, visibility map):
    measured at once, the planner would still think the org has no rows and sort all of them."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("specialists_specialist", "chat_chatsession", "billing_ledgerentry", "tasks_task"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


async def timed_requests(base: str, path: str, token: str, concurrency: int, seconds: float) -> tuple[list[float], int]:
    """Each request's latency (seconds) and the number of errors, ``concurrency`` in flight."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies, errors


def figures(latencies: list[float], errors: int, seconds: float) -> dict:
    latencies = sorted(latencies)
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "errors": errors,
        "count": len(latencies),
    }


def load(base: str, path: str, token: str, concurrency: int, seconds: float) -> dict:
    return figures(*asyncio.run(timed_requests(base, path, token, concurrency, seconds)), seconds)


def beside_health(base: str, path: str, token: str, concurrency: int, seconds: float) -> tuple[dict, dict]:
    """``path`` and ``/health`` in alternating slices of a second, ``seconds`` each: the load of a
    shared machine drifts within a minute, and a ratio of two figures taken a minute apart would
    measure that drift as much as the endpoint."""
    slices = max(1, round(seconds))
    taken: dict[str, tuple[list[float], int]] = {path: ([], 0), "/health": ([], 0)}
    for _ in range(slices):
        for target in ("/health", path):
            latencies, errors = asyncio.run(timed_requests(base, target, token, concurrency, seconds / slices))
            taken[target] = (taken[target][0] + latencies, taken[target][1] + errors)
    return figures(*taken[path], seconds), figures(*taken["/health"], seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    ensure_database()
    token = populate(args.rows)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    env = dict(os.environ, DEBUG="false", LOG_LEVEL="WARNING")
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
    if subprocess.run(["redis-cli", "-u", redis, "ping"], capture_output=True, check=False).returncode == 0:
        env["REDIS_URL"] = redis
    port = 18300
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "leancore.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        print(
            f"{args.rows} rows of each kind in one org; {args.concurrency} requests in flight, {args.seconds:g} s each"
        )
        print("| endpoint | requests/s | p50 ms | p99 ms | errors | /health beside, requests/s | × /health |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for path in ENDPOINTS:
            load(base, path, token, args.concurrency, 1)  # warm-up
            if path == "/health":
                found, beside = load(base, path, token, args.concurrency, args.seconds), None
            else:
                found, beside = beside_health(base, path, token, args.concurrency, args.seconds)
            ratio = f"| {beside['rps']:.0f} | {found['rps'] / beside['rps']:.2f} |" if beside else "| | |"
            print(
                f"| `{path}` | {found['rps']:.0f} | {found['p50']:.1f} | {found['p99']:.1f} "
                f"| {found['errors']} of {found['count']} {ratio}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

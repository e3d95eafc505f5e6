"""Benchmark: every REST list endpoint on an org with many rows, side by side with ``GET /health``.

Usage:  .venv/bin/python bench/rest_lists.py [--rows 10000] [--concurrency 10] [--seconds 5] [--only PATH ...]

The lists are those of the URLconf (``core.list_routes.list_routes``, as
``tests/core/test_query_counts.py`` derives them): each is filled by its filler in ``bench/_list_rows.py``
and a list endpoint without one stops the bench before it starts, as does a list that does not answer
200 with at least the rows it was given (so a new list endpoint is never skipped silently).

Migrates a benchmark database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/leancore_bench), bulk-creates ``--rows`` rows of each listed kind
in one org (specialists, chat sessions, ledger entries, tasks, projects, workspaces, members, API keys,
alerts, MCP connections, webhooks; one workspace's artifacts and files, one connection's tools, one
webhook's deliveries, each with their ``--rows``) with two exceptions: a workspace's threads are one in
two of the org's sessions (``--rows`` / 2), and ``/orgs`` is read by a second user who belongs to
``--rows`` orgs. The tables of every org (model rates, credit packages, the MCP catalog) are topped
up to ``--rows``, not past it, however many runs share the database.

Starts one Daphne process on the default settings (a bounded connection pool; Redis when
BENCH_REDIS_URL answers) and, from this separate process, keeps ``--concurrency`` requests in flight
against each list at the default page size and at ``pageSize=100`` for ``--seconds``: requests per
second, p50/p99 latency, errors and the server process's CPU per request (from /proc), each next to
the cost of the server's cheapest answer (``/health``), measured in one-second slices alternating with the list's own (``× /health``: the
list's requests per second over those of ``/health`` beside it). Lists are paginated, so their cost
should not grow with the rows (the query count per request is asserted in
``tests/core/test_query_counts.py``). Exits non-zero when any request failed.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, ensure_database
from _list_rows import FILLERS, Fill, missing_fillers

os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"

import httpx


def populate(rows: int) -> tuple[dict[str, str], dict[str, str], dict[str, int]]:
    """One org with ``rows`` of each listed kind: each list's URL, the token it is read with and the
    rows it must list at least (all by the list's schema path)."""
    import django

    django.setup()
    from accounts.models import User
    from accounts.services import issue_tokens
    from core.list_routes import list_routes, list_url
    from signup.services import open_organization

    paths = sorted(list_routes())
    missing = missing_fillers(paths)
    if missing:
        raise SystemExit(f"list endpoints without a filler in bench/_list_rows.py (or fillers of none): {missing}")
    owner = User.objects.create_user(email=f"lists-{time.time_ns()}@example.com", password="x-Bench-pass-1")
    org = open_organization(name="Lists bench", owner=owner)
    fill = Fill(rows=rows, org=org, owner=owner)
    for filler in FILLERS.values():
        filler(fill)
    analyze_after_bulk_load()
    token = issue_tokens(user=owner).access
    urls = {path: list_url(path, org_id=org.pk, parent_ids=fill.parents) for path in paths}
    tokens = {path: fill.tokens.get(path, token) for path in paths}
    expected = {path: fill.expected.get(path, rows) for path in paths}
    return urls, tokens, expected


def analyze_after_bulk_load() -> None:
    """The tables just filled as autovacuum leaves them a minute later (statistics, visibility map):
    measured at once, the planner would still think the org has no rows and sort all of them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("VACUUM")


def check_every_list(
    base: str, urls: dict[str, str], tokens: dict[str, str], expected: dict[str, int], only: list[str] | None
) -> None:
    """Each list measured answers 200 with at least its rows and a full page of 100: else the bench stops."""
    failures = []
    for path, url in urls.items():
        if only is not None and path not in only:
            continue
        headers = {"authorization": f"Bearer {tokens[path]}"}
        try:
            response = httpx.get(f"{base}{url}?pageSize=100", headers=headers, timeout=60)
        except httpx.HTTPError as exc:
            failures.append(f"{path} ({url}): {exc!r}")
            continue
        body = response.json() if response.status_code == 200 else {}
        count, results = body.get("count", 0), body.get("results", [])
        if response.status_code != 200 or count < expected[path] or len(results) != min(100, expected[path]):
            failures.append(f"{path} ({url}): {response.status_code}, count {count}, {len(results)} on the page")
    if failures:
        raise SystemExit("lists not populated as the bench needs:\n" + "\n".join(failures))


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
                try:
                    response = await client.get(path)
                except httpx.HTTPError:  # a timeout: counted, the load goes on
                    errors += 1
                    continue
                if response.status_code != 200:  # an error answer: counted once, not timed as a list
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies, errors


def server_cpu_seconds(pid: int) -> float:
    """The server process's CPU time so far (user + system, from /proc; 0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def figures(latencies: list[float], errors: int, seconds: float, cpu: float = 0.0) -> dict:
    latencies = sorted(latencies)
    answered = bool(latencies)  # none when every request failed
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000 if answered else float("nan"),
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000 if answered else float("nan"),
        "errors": errors,
        "count": len(latencies) + errors,
        "cpu_ms": cpu * 1000 / max(1, len(latencies) + errors),  # the server's CPU per request
    }


def load(base: str, path: str, token: str, concurrency: int, seconds: float, *, server: int) -> dict:
    started = server_cpu_seconds(server)
    taken = asyncio.run(timed_requests(base, path, token, concurrency, seconds))
    return figures(*taken, seconds, server_cpu_seconds(server) - started)


def beside_health(
    base: str, path: str, token: str, concurrency: int, seconds: float, *, server: int
) -> tuple[dict, dict]:
    """``path`` and ``/health`` in alternating slices of a second, ``seconds`` each: the load of a
    shared machine drifts within a minute, and a ratio of two figures taken a minute apart would
    measure that drift as much as the endpoint. The server's CPU time is summed per target."""
    slices = max(1, round(seconds))
    taken: dict[str, tuple[list[float], int]] = {path: ([], 0), "/health": ([], 0)}
    cpu = {path: 0.0, "/health": 0.0}
    for _ in range(slices):
        for target in ("/health", path):
            started = server_cpu_seconds(server)
            latencies, errors = asyncio.run(timed_requests(base, target, token, concurrency, seconds / slices))
            cpu[target] += server_cpu_seconds(server) - started
            taken[target] = (taken[target][0] + latencies, taken[target][1] + errors)
    return figures(*taken[path], seconds, cpu[path]), figures(*taken["/health"], seconds, cpu["/health"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="measure only these lists (schema paths)")
    args = parser.parse_args()
    ensure_database()
    urls, tokens, expected = populate(args.rows)
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
    failed = 0
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        check_every_list(base, urls, tokens, expected, args.only)
        measured = [path for path in urls if args.only is None or path in args.only]
        # each list at the default page size and at the largest (100), between two health checks
        targets = [(path, urls[path] + query) for query in ("", "?pageSize=100") for path in measured]
        print(
            f"{args.rows} rows of each kind in one org; {args.concurrency} requests in flight, {args.seconds:g} s each"
        )
        print(
            "| endpoint | requests/s | p50 ms | p99 ms | errors | /health beside, requests/s | × /health "
            "| server CPU ms/request | /health's beside |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        main_token = tokens[measured[0]] if measured else ""
        for path, url in [("/health", "/health"), *targets, ("/health", "/health")]:
            shown = path + url[len(url.split("?")[0]) :]
            token = tokens.get(path, main_token)
            load(base, url, token, args.concurrency, 1, server=server.pid)  # warm-up
            if path == "/health":
                found, beside = load(base, url, token, args.concurrency, args.seconds, server=server.pid), None
            else:
                found, beside = beside_health(base, url, token, args.concurrency, args.seconds, server=server.pid)
            failed += found["errors"]
            ratio = f"| {beside['rps']:.0f} | {found['rps'] / beside['rps']:.2f} |" if beside else "| | |"
            cpu = f" {found['cpu_ms']:.1f} | {beside['cpu_ms']:.1f} |" if beside else f" {found['cpu_ms']:.1f} | |"
            print(
                f"| `{shown}` | {found['rps']:.0f} | {found['p50']:.1f} | {found['p99']:.1f} "
                f"| {found['errors']} of {found['count']} {ratio}{cpu}",
                flush=True,
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # requests still running (a list that timed out)
            server.kill()
            server.wait()
    if failed:
        raise SystemExit(f"{failed} requests failed")


if __name__ == "__main__":
    main()

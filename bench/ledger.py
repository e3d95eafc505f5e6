"""Benchmark: the ledger under concurrency on PostgreSQL — hold + settle operations per second.

Usage:  .venv/bin/python bench/ledger.py [--seconds 5] [--threads 1,4,8,16] [--orgs 1,100] [--caps none,set]

Migrates a benchmark database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/leancore_bench), then for each number of orgs and threads runs
``reserve`` + ``settle`` (the two transactions of every model call) in a loop from that many
threads, each with its own connection, and prints the operations per second, p50/p99 latency of one
hold+settle, and whether the ledger is still exact: it sums to every balance, nothing is held
any more, and every entry's ``balanceAfter`` is the sum of the entries up to it. With ``--caps set``
every call is checked against all the caps a call can have: the org's monthly budget, its
specialist's limit, and its member's cap (even threads) or its API key's cap (odd threads), each
high enough never to refuse, so that every check is made. Against one org every operation
serializes on the org's account row (that is the hard guarantee: the balance is never overdrawn),
for as long as the row's own arithmetic takes; spread over many orgs the operations run in parallel.
A settlement in a transaction of its own returns once it is on disk (outside the row's lock).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_database

os.environ["DB_POOL_SIZE"] = "0"  # one connection per thread, held for the run
os.environ["DB_CONN_MAX_AGE"] = "600"


CAP = Decimal(10**12)  # never reached: every check is made, none refuses


def run(orgs: list, threads: int, seconds: float, caps: bool) -> dict:
    from django.db import connection

    from billing import services

    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)
    stop_at = [0.0]

    def worker(index: int) -> None:
        org = orgs[index % len(orgs)]
        mine = []
        payer = {}
        if caps:  # a specialist's call started by a member (even threads) or with an API key (odd ones)
            payer = {"specialist_id": uuid.uuid4(), "specialist_limit": CAP, "specialist_name": "Bench"}
            if index % 2:
                payer |= {"api_key_id": uuid.uuid4(), "key_limit": CAP}
            else:
                payer |= {"user_id": uuid.uuid4(), "member_limit": CAP}
        try:
            barrier.wait()
            while time.perf_counter() < stop_at[0]:
                started = time.perf_counter()
                hold = services.reserve(org=org, model="bench-ledger", input_tokens=100, max_output_tokens=100, **payer)
                services.settle(reservation_id=hold.reservation_id, input_tokens=80, output_tokens=60)
                mine.append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    stop_at[0] = time.perf_counter() + seconds + 0.2
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    latencies.sort()
    return {
        "ops": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def exact(orgs: list) -> bool:
    from django.db import connection
    from django.db.models import Sum

    from billing.models import CreditAccount, LedgerEntry

    for org in orgs:
        account = CreditAccount.all_orgs.get(organization=org)
        total = LedgerEntry.all_orgs.filter(organization=org).aggregate(total=Sum("amount"))["total"]
        if total != account.balance or account.reserved != 0:
            return False
        with connection.cursor() as cursor:  # every row: its balance after is the running sum
            cursor.execute(
                "SELECT count(*) FROM (SELECT balance_after, SUM(amount) OVER (ORDER BY created_at, id) AS running "
                "FROM billing_ledgerentry WHERE organization_id = %s) chain WHERE balance_after <> running",
                [org.pk],
            )
            if cursor.fetchone()[0]:
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--threads", default="1,4,8,16")
    parser.add_argument("--orgs", default="1,100")
    parser.add_argument("--caps", default="none,set", help="none: no cap; set: every cap set (none reached)")
    args = parser.parse_args()
    ensure_database()
    import django

    django.setup()
    from accounts.models import User
    from billing.models import ModelRate
    from billing.services import grant_credits
    from signup.services import open_organization

    def make_org(name: str):
        owner = User.objects.create_user(email=f"ledger-{time.time_ns()}@example.com", password="x-Bench-pass-1")
        return open_organization(name=name, owner=owner)

    ModelRate.objects.update_or_create(
        model="bench-ledger",
        defaults={
            "provider": "local",
            "display_name": "Ledger bench",
            "input_credits_per_million": Decimal("1.5"),
            "output_credits_per_million": Decimal("2.25"),
            "context_window": 8000,
        },
    )
    print(f"hold + settle on PostgreSQL, {args.seconds:g} s per row, {os.cpu_count()} cores")
    print("| caps | orgs | threads | ops/s | p50 ms | p99 ms | ledger exact |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for caps in args.caps.split(","):
        for org_count in (int(n) for n in args.orgs.split(",")):
            orgs = [make_org(name=f"Ledger bench {n}") for n in range(org_count)]
            for org in orgs:
                grant_credits(org=org, amount=Decimal(10_000_000), reason="bench")
                if caps == "set":
                    org.monthly_budget = CAP
                    org.save(update_fields=["monthly_budget"])
            for threads in (int(n) for n in args.threads.split(",")):
                figures = run(orgs, threads, args.seconds, caps == "set")
                print(
                    f"| {caps} | {org_count} | {threads} | {figures['ops']:.0f} | {figures['p50']:.1f} "
                    f"| {figures['p99']:.1f} | {'yes' if exact(orgs) else 'NO'} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

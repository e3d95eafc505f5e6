"""Benchmark: the usage summary over 1 million ledger entries of one org, on PostgreSQL.

Usage:  .venv/bin/python bench/usage_summary.py [--entries 1000000] [--runs 7]

Migrates a benchmark database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/leancore_bench), gives one org ``--entries`` usage entries over
the last 60 days (20 members and key turns with no member, 10 specialists and calls with none, 4
models), inserted by one ``generate_series`` statement (an org that already has them is reused: the
ledger is append-only), plus 100 000 entries of another org, then times ``billing.usage.summary``
(what ``GET /billing/usage/summary`` runs: one grouped query) for each ``groupBy`` and a few pairs,
as an admin (every member's usage) and as a member (their own), ``--runs`` times each: p50 and max,
and the plan's scan; then the ledger CSV's work for ``--export-chunks`` chunks (rows per second, and
the slowest chunk's read: keyset chunks deep in the ledger cost what the first ones do).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_database

GROUPINGS = ["day", "member", "specialist", "model", "apiKey", "day,member", "specialist,model", "member,model"]
MEMBERS, SPECIALISTS = 20, 10

INSERT = """
INSERT INTO billing_ledgerentry (id, organization_id, kind, amount, balance_after, model, input_tokens,
    output_tokens, specialist_id, specialist_name, user_id, description, created_at)
SELECT gen_random_uuid(), %(org)s, 'usage', -((n %% 997) + 1) / 1000000.0 * 37, 1,
    (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-5-haiku', 'claude-3-5-sonnet'])[1 + n %% 4],
    (n %% 5000), (n %% 1500),
    CASE WHEN n %% 11 = 0 THEN NULL ELSE (%(specialists)s::uuid[])[1 + n %% 10] END, '',
    CASE WHEN n %% 21 = 0 THEN NULL ELSE (%(members)s::uuid[])[1 + n %% 20] END, '',
    now() - (n::float / %(count)s) * INTERVAL '60 days'
FROM generate_series(1, %(count)s) AS n
"""


def populate(entries: int) -> tuple:
    """The bench org (made once), its owner and one member; their ledger filled to ``entries``."""
    import uuid

    from django.db import connection

    from accounts.models import User
    from billing.models import LedgerEntry
    from orgs.models import Membership, Organization, Role
    from signup.services import open_organization

    def make(name: str) -> Organization:
        found = Organization.objects.filter(name=name).first()
        if found is not None:
            return found
        owner = User.objects.create_user(email=f"usage-{time.time_ns()}@example.com", password="x-Bench-pass-1")
        return open_organization(name=name, owner=owner)

    org, other = make("Usage summary bench"), make("Usage summary bench, another org")
    members = []
    for index in range(MEMBERS):
        email = f"usage-member-{index}-{org.pk}@example.com"
        user = User.objects.filter(email=email).first() or User.objects.create_user(email=email, password="x-Pass-1a")
        Membership.all_orgs.get_or_create(organization=org, user=user, defaults={"role": Role.MEMBER})
        members.append(user)
    specialists = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-specialist-{n}")) for n in range(SPECIALISTS)]
    for target, count in ((org, entries), (other, entries // 10)):
        have = LedgerEntry.all_orgs.filter(organization=target, kind="usage").count()
        if have < count:
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(
                    INSERT,
                    {
                        "org": target.pk,
                        "count": count - have,
                        "members": [str(user.pk) for user in members],
                        "specialists": specialists,
                    },
                )
            print(f"inserted {count - have} entries of {target.name} in {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE billing_ledgerentry")
    owner = Membership.all_orgs.get(organization=org, role=Role.OWNER).user
    return org, owner, members[0]


def plan(org, context, start, end, group_by: list[str]) -> str:
    """The plan's scan nodes (which index, if any)."""
    from django.db import connection
    from django.db.models import Count

    from billing import usage

    queryset = usage.usage_entries(org=org, context=context, start=start, end=end).values(
        **{f"g_{d}": usage.DIMENSIONS[d][1] for d in group_by}
    )
    sql, params = queryset.annotate(n=Count("id")).order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        lines = [row[0] for row in cursor.fetchall()]
    scans = [line.strip().removeprefix("->").strip() for line in lines if "Scan" in line]
    return "; ".join(scan.split("  (")[0] for scan in scans)


def export(org, chunks: int) -> tuple[int, float, float]:
    """The ledger CSV's work for ``chunks`` chunks (read by keyset, rows made as the endpoint makes them):
    rows, seconds, and the slowest chunk's read in ms (the last chunks are as fast as the first)."""
    from billing import usage
    from billing.models import LedgerEntry
    from billing.serializers import LedgerEntrySerializer
    from core.csv_stream import CHUNK_ROWS, _text

    fields = list(LedgerEntrySerializer().fields)
    queryset = LedgerEntry.all_orgs.for_org(org)
    cursor, rows, slowest = None, 0, 0.0
    started = time.perf_counter()
    for _ in range(chunks):
        read_at = time.perf_counter()
        chunk, cursor = usage.ledger_chunk(queryset, after=cursor, size=CHUNK_ROWS)
        slowest = max(slowest, time.perf_counter() - read_at)
        data = LedgerEntrySerializer(chunk, many=True).data
        _text([[row[name] for name in fields] for row in data])
        rows += len(chunk)
        if cursor is None:
            break
    return rows, time.perf_counter() - started, slowest * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--export-chunks", type=int, default=200, help="chunks of the ledger CSV to time")
    args = parser.parse_args()
    ensure_database()
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from billing import usage
    from orgs.context import OrgContext
    from orgs.models import Membership

    org, owner, member = populate(args.entries)
    end = timezone.now() + timedelta(minutes=1)
    start = end - timedelta(days=61)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
    print(f"usage summary, {args.entries} entries of one org over 60 days, {args.runs} runs each; {version}")
    print("| groupBy | caller | rows | p50 ms | max ms | scan |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for user in (owner, member):
        membership = Membership.all_orgs.select_related("user").get(organization=org, user=user)
        context = OrgContext(org=org, membership=membership, is_staff=False)
        for grouping in GROUPINGS:
            group_by = grouping.split(",")
            timings, rows = [], 0
            for _ in range(args.runs):
                started = time.perf_counter()
                found = usage.summary(org=org, context=context, start=start, end=end, group_by=group_by)
                timings.append((time.perf_counter() - started) * 1000)
                rows = len(found.rows)
            print(
                f"| {grouping} | {membership.role} | {rows} | {statistics.median(timings):.0f} | {max(timings):.0f} "
                f"| {plan(org, context, start, end, group_by)} |",
                flush=True,
            )
    rows, seconds, slowest = export(org, args.export_chunks)
    print(
        f"ledger CSV: {rows} rows in {seconds:.1f} s ({rows / seconds:.0f} rows/s), slowest chunk read {slowest:.0f} ms"
    )


if __name__ == "__main__":
    main()

"""Benchmark: the admin's organization page of an org with 1 million ledger entries, on PostgreSQL.

Usage:  .venv/bin/python bench/admin_org_page.py [--entries 1000000] [--runs 30]

Migrates a benchmark database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/leancore_bench), gives one org ``--entries`` usage entries over
the last 60 days (20 members and key turns with no member, 10 specialists, 4 models), inserted by
one ``generate_series`` statement (an org that already has them is reused: the ledger is
append-only), its account, its payers' spend this period and open holds as the settlements keep
them, 20 open holds, alerts, 5 webhooks with 10 000 deliveries and 10 API keys; another org with a
tenth of that. Then signs in a superuser with Django's test client and GETs the organization's change
page (balance, usage chart, members, webhooks, API keys, last deliveries) ``--runs`` times after one
first view: p50, p95 and max, the statements per page and the slowest of them (where the time goes). ``--before REF`` first runs the
same bench on the same data with the code of git revision REF (a temporary worktree): before and
after in one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, ensure_database

os.environ.setdefault("ALLOWED_HOSTS", "testserver")

MEMBERS, SPECIALISTS, KEYS, WEBHOOKS = 20, 10, 10, 5

USAGE = """
INSERT INTO billing_ledgerentry (id, organization_id, kind, amount, balance_after, model, input_tokens,
    output_tokens, specialist_id, specialist_name, user_id, api_key_id, description, created_at)
SELECT gen_random_uuid(), %(org)s, 'usage', -((n %% 997) + 1) / 1000000.0 * 37, 1,
    (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-5-haiku', 'claude-3-5-sonnet'])[1 + n %% 4],
    (n %% 5000), (n %% 1500),
    CASE WHEN n %% 11 = 0 THEN NULL ELSE (%(specialists)s::uuid[])[1 + n %% 10] END, '',
    CASE WHEN n %% 21 = 0 THEN NULL ELSE (%(members)s::uuid[])[1 + n %% 20] END,
    CASE WHEN n %% 21 = 0 THEN (%(keys)s::uuid[])[1 + n %% 10] END, '',
    now() - (n::float / %(count)s) * INTERVAL '60 days'
FROM generate_series(1, %(count)s) AS n
"""

# what the settlements keep beside the ledger: the account's spend this period, each payer's
PERIOD = """
UPDATE billing_creditaccount a SET balance = 1000000, period_start = %(start)s,
    period_spent = COALESCE((SELECT -SUM(amount) FROM billing_ledgerentry l WHERE l.organization_id = a.organization_id
        AND l.kind = 'usage' AND l.created_at >= %(start)s), 0)
WHERE a.organization_id = %(org)s;
DELETE FROM billing_payerspend WHERE organization_id = %(org)s;
INSERT INTO billing_payerspend (id, organization_id, payer, payer_id, period_start, spent)
SELECT gen_random_uuid(), %(org)s, payer, payer_id, %(start)s, -SUM(amount) FROM (
    SELECT 'user_id' AS payer, user_id AS payer_id, amount FROM billing_ledgerentry
        WHERE organization_id = %(org)s AND kind = 'usage' AND created_at >= %(start)s AND user_id IS NOT NULL
    UNION ALL SELECT 'specialist_id', specialist_id, amount FROM billing_ledgerentry
        WHERE organization_id = %(org)s AND kind = 'usage' AND created_at >= %(start)s AND specialist_id IS NOT NULL
    UNION ALL SELECT 'api_key_id', api_key_id, amount FROM billing_ledgerentry
        WHERE organization_id = %(org)s AND kind = 'usage' AND created_at >= %(start)s AND api_key_id IS NOT NULL
) spend GROUP BY payer, payer_id
"""

DELIVERIES = """
WITH events AS (
    INSERT INTO webhooks_event (id, organization_id, type, subject_id, body, created_at, updated_at)
    SELECT gen_random_uuid(), %(org)s, (ARRAY['turn.completed', 'alert.raised', 'turn.failed'])[1 + n %% 3], NULL,
        '{"type": "turn.completed"}', now() - n * INTERVAL '1 minute', now() - n * INTERVAL '1 minute'
    FROM generate_series(1, %(count)s) AS n RETURNING id, created_at
)
INSERT INTO webhooks_delivery (id, organization_id, webhook_id, event_id, attempt, status, due_at, sent_at,
    response_status, error, delivered_at, created_at, updated_at)
SELECT gen_random_uuid(), %(org)s, (%(hooks)s::uuid[])[1 + (extract(epoch FROM created_at)::bigint / 60) %% %(n_hooks)s],
    id, 1, 'delivered', created_at, created_at, 200, '', created_at, created_at, created_at
FROM events
"""


def populate(entries: int):
    """The bench org (made once) with its ledger filled to ``entries``, and another org with a tenth."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from billing.models import BudgetAlert, CreditAccount, LedgerEntry, Reservation
    from core.credits import period_bounds
    from core.crypto import encrypt_json
    from orgs.models import ApiKey, Membership, Organization, Role
    from signup.services import open_organization
    from webhooks.models import Delivery, Webhook

    def make(name: str) -> Organization:
        found = Organization.objects.filter(name=name).first()
        if found is not None:
            return found
        owner = User.objects.create_user(email=f"adminorg-{time.time_ns()}@example.com", password="x-Bench-pass-1")
        return open_organization(name=name, owner=owner)

    org, other = make("Admin page bench"), make("Admin page bench, another org")
    specialists = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-specialist-{n}")) for n in range(SPECIALISTS)]
    start, _ = period_bounds(timezone.now())
    for target, count in ((org, entries), (other, entries // 10)):
        members = []
        for index in range(MEMBERS):
            email = f"adminorg-member-{index}-{target.pk}@example.com"
            user = User.objects.filter(email=email).first() or User.objects.create_user(email=email, password="x-P-1a")
            Membership.all_orgs.get_or_create(organization=target, user=user, defaults={"role": Role.MEMBER})
            members.append(user)
        keys = list(ApiKey.all_orgs.filter(organization=target))
        for index in range(len(keys), KEYS):
            keys.append(
                ApiKey.all_orgs.create(
                    organization=target,
                    name=f"Server {index}",
                    prefix=uuid.uuid4().hex[:8],
                    secret_hash=uuid.uuid4().hex * 2,
                    role=Role.MEMBER,
                    specialist_ids=specialists[:3] if index % 2 else None,
                )
            )
        hooks = list(Webhook.all_orgs.filter(organization=target))
        for index in range(len(hooks), WEBHOOKS):
            hooks.append(
                Webhook.all_orgs.create(
                    organization=target,
                    url=f"https://hooks.example.com/{target.pk}/{index}",
                    events=["turn.completed", "alert.raised"],
                    secret_encrypted=encrypt_json({"secret": uuid.uuid4().hex}),
                    enabled=index != 4,
                    last_status="delivered",
                )
            )
        have = LedgerEntry.all_orgs.filter(organization=target, kind="usage").count()
        with connection.cursor() as cursor:
            if have < count:
                started = time.perf_counter()
                cursor.execute(
                    USAGE,
                    {
                        "org": target.pk,
                        "count": count - have,
                        "members": [str(user.pk) for user in members],
                        "specialists": specialists,
                        "keys": [str(key.pk) for key in keys],
                    },
                )
                print(f"inserted {count - have} entries of {target.name} in {time.perf_counter() - started:.1f} s")
            cursor.execute(PERIOD, {"org": target.pk, "start": start})
            if not Delivery.all_orgs.filter(organization=target).exists():
                hook_ids = [str(hook.pk) for hook in hooks]
                params = {"org": target.pk, "count": count // 100, "hooks": hook_ids, "n_hooks": len(hook_ids)}
                cursor.execute(DELIVERIES, params)
        account = CreditAccount.all_orgs.get(organization=target)
        if not Reservation.all_orgs.filter(organization=target, status="active").exists():
            Reservation.all_orgs.bulk_create(
                Reservation(organization=target, account=account, amount=1, model="gpt-4o", user_id=members[n].pk)
                for n in range(20)
            )
            CreditAccount.all_orgs.filter(pk=account.pk).update(reserved=20)
        for threshold in (50, 80):
            BudgetAlert.all_orgs.get_or_create(
                organization=target, kind="budget_threshold", threshold=threshold, period_start=start,
                defaults={"message": f"{threshold}% of the budget"},
            )  # fmt: skip
    Organization.objects.filter(pk=org.pk).update(monthly_budget=500_000)
    with connection.cursor() as cursor:
        for table in ("billing_ledgerentry", "billing_payerspend", "webhooks_delivery", "webhooks_event"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return Organization.objects.get(pk=org.pk)


def run_before(ref: str, entries: int, runs: int) -> None:
    """This bench on the same database with the code of ``ref`` (its migrations are a subset of ours)."""
    import tempfile

    tree = Path(tempfile.mkdtemp(prefix="leancore-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True, capture_output=True)
    try:
        for name in ("_common.py", "admin_org_page.py"):
            shutil.copy(ROOT / "bench" / name, tree / "bench" / name)
        print(f"before ({ref}):", flush=True)
        command = [sys.executable, "bench/admin_org_page.py", "--entries", str(entries), "--runs", str(runs)]
        subprocess.run(command, cwd=tree, check=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    print("after (this tree):", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--before", metavar="REF", help="first the same bench with the code of this git revision")
    args = parser.parse_args()
    ensure_database()
    if args.before:
        run_before(args.before, args.entries, args.runs)
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from billing import models as billing_models

    org = populate(args.entries)
    operator = User.objects.filter(email="adminorg-operator@example.com").first()
    operator = operator or User.objects.create_superuser(email="adminorg-operator@example.com", password="x-Ops-1a")
    client = Client()
    client.force_login(operator)
    url = f"/admin/orgs/organization/{org.pk}/change/"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]

    if hasattr(billing_models, "DailyUsage"):  # the first view counts the days that are over
        billing_models.DailyUsage.all_orgs.filter(organization=org).delete()
    started = time.perf_counter()
    first = client.get(url)
    first_ms = (time.perf_counter() - started) * 1000
    assert first.status_code == 200, first.status_code
    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        client.get(url)
        profiled_ms = (time.perf_counter() - started) * 1000
    timings.sort()
    sql_ms = sum(float(query["time"]) for query in queries.captured_queries) * 1000
    print(f"admin organization page, {args.entries} ledger entries in the org, {args.runs} GETs; {version}")
    print("| first view ms (days counted) | p50 ms | p95 ms | max ms | statements | SQL ms of one view |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    p95 = timings[max(0, round(len(timings) * 0.95) - 1)]
    print(
        f"| {first_ms:.0f} | {statistics.median(timings):.0f} | {p95:.0f} | {timings[-1]:.0f} "
        f"| {len(queries.captured_queries)} | {sql_ms:.0f} of {profiled_ms:.0f} |"
    )
    print("slowest statements of one view:")
    for query in sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:5]:
        print(f"  {float(query['time']) * 1000:7.1f} ms  {query['sql'][:160]}")


if __name__ == "__main__":
    main()

"""Benchmark: POST /api/chat/stream through Daphne versus calling the same fake provider directly.

Usage:  .venv/bin/python bench/chat_stream.py [--runs 50] [--concurrency 10] [--deltas 20] [--gap-ms 10]

It starts a fake OpenAI-compatible server (deltas a fixed gap apart), migrates a benchmark
database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/leancore_bench),
starts one Daphne process, and prints medians/p95 of time to first token (TTFT) and total
time, LeanCore's added latency, the server's CPU time per streamed turn (auth, tenancy,
reservation, persistence, settlement included), and the same under N concurrent streams.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault(
    "DATABASE_URL", os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leancore_bench")
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leancore.settings")
os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
os.environ["THROTTLE_CHAT"] = "100000/min"

import logging  # noqa: E402

import httpx  # noqa: E402
import openai  # noqa: E402

logging.getLogger("httpx").setLevel(logging.WARNING)

from tests.fakes.llm_server import FakeLLM, Scenario, ThreadedServer, build_app, free_port  # noqa: E402


def ensure_database() -> None:
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgres"):
        name = url.rsplit("/", 1)[1]
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], capture_output=True, check=False)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True, capture_output=True)


def setup_data() -> tuple[str, str]:
    import django

    django.setup()
    from decimal import Decimal

    from accounts.models import User
    from accounts.services import issue_tokens
    from billing.services import grant_credits
    from signup.services import open_organization
    from specialists.models import Specialist

    user = User.objects.create_user(email=f"bench-{time.time_ns()}@example.com", password="x-Bench-pass-1")
    org = open_organization(name="Bench", owner=user)
    grant_credits(org=org, amount=Decimal(1_000_000), reason="bench")
    specialist = Specialist.all_orgs.create(
        organization=org, name="Bench", model="gpt-4o-mini", max_output_tokens=200, instructions="Answer."
    )
    return issue_tokens(user=user).access, str(specialist.pk)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def direct_once(base_url: str) -> tuple[float, float]:
    client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    start = time.perf_counter()
    ttft = None
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - start
    return ttft or 0.0, time.perf_counter() - start


def leancore_once(url: str, token: str, specialist: str) -> tuple[float, float]:
    start = time.perf_counter()
    ttft = None
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST",
            f"{url}/api/chat/stream",
            json={"specialistId": specialist, "message": "hi"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        response.raise_for_status()
        for line in response.iter_lines():
            if ttft is None and line == "event: delta":
                ttft = time.perf_counter() - start
    return ttft or 0.0, time.perf_counter() - start


def summary(label: str, samples: list[tuple[float, float]]) -> tuple[float, float]:
    ttfts = sorted(s[0] * 1000 for s in samples)
    totals = sorted(s[1] * 1000 for s in samples)
    p95 = lambda xs: xs[min(len(xs) - 1, int(len(xs) * 0.95))]  # noqa: E731
    print(
        f"{label:<34} TTFT p50 {statistics.median(ttfts):7.1f} ms  p95 {p95(ttfts):7.1f} ms   "
        f"total p50 {statistics.median(totals):7.1f} ms  p95 {p95(totals):7.1f} ms"
    )
    return statistics.median(ttfts), statistics.median(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--deltas", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=10)
    args = parser.parse_args()

    fake = FakeLLM()
    scenario = Scenario(chunks=[f"w{i} " for i in range(args.deltas)], delay=args.gap_ms / 1000, usage=(50, 60))
    fake.next = lambda: scenario  # every request gets the same scenario
    fake.requests = type("Sink", (), {"append": lambda self, item: None})()
    fake.headers = fake.requests
    with ThreadedServer(build_app(fake)) as llm:
        ensure_database()
        token, specialist = setup_data()
        port = free_port()
        env = dict(os.environ, OPENAI_BASE_URL=f"{llm.url}/v1", OPENAI_API_KEY="x", DEBUG="false")
        env.pop("REDIS_URL", None)
        daphne = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "leancore.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(f"{url}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            for _ in range(5):  # warm up both paths
                direct_once(f"{llm.url}/v1")
                leancore_once(url, token, specialist)

            print(f"{args.runs} sequential runs, {args.deltas} deltas {args.gap_ms:g} ms apart, one Daphne process")
            direct = [direct_once(f"{llm.url}/v1") for _ in range(args.runs)]
            cpu_before = cpu_seconds(daphne.pid)
            through = [leancore_once(url, token, specialist) for _ in range(args.runs)]
            cpu_per_turn = (cpu_seconds(daphne.pid) - cpu_before) / args.runs * 1000
            d_ttft, d_total = summary("provider directly (openai SDK)", direct)
            l_ttft, l_total = summary("through /api/chat/stream", through)
            print(
                f"{'added by LeanCore':<34} TTFT p50 {l_ttft - d_ttft:+7.1f} ms           total p50 {l_total - d_total:+7.1f} ms"
            )
            print(f"{'server CPU per streamed turn':<34} {cpu_per_turn:7.1f} ms")

            print(f"\n{args.concurrency} concurrent streams x {max(args.runs // args.concurrency, 1)} rounds")
            lock = threading.Lock()
            results: list[tuple[float, float]] = []

            def worker(_: int) -> None:
                sample = leancore_once(url, token, specialist)
                with lock:
                    results.append(sample)

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                list(pool.map(worker, range(args.concurrency * max(args.runs // args.concurrency, 1))))
            wall = time.perf_counter() - started
            c_ttft, c_total = summary(f"{args.concurrency} concurrent via LeanCore", results)
            print(
                f"{'queueing vs sequential (TTFT p50)':<34} {c_ttft - l_ttft:+7.1f} ms   throughput {len(results) / wall:5.1f} streams/s"
            )
        finally:
            daphne.terminate()
            daphne.wait(timeout=10)


if __name__ == "__main__":
    main()

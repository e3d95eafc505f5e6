"""Benchmark: what tracing costs a streamed turn, in server CPU, with tracing off and on side by side.

Usage:  .venv/bin/python bench/tracing_cost.py [--rounds 8] [--turns 30] [--concurrency 1]
            [--deltas 20] [--gap-ms 10] [--variant NAME:KEY=VALUE,KEY=VALUE ...] [--one-at-a-time]

It starts a fake OpenAI-compatible server (deltas a fixed gap apart), an OTLP/HTTP receiver that
decodes every export (tests/fakes/otlp_receiver.py), migrates a benchmark database
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/leancore_bench) and starts one
Daphne process per setting on the product's defaults: ``off`` (no OTEL_EXPORTER_OTLP_ENDPOINT),
``on`` (the endpoint set to the receiver) and any ``--variant`` (``on`` plus the variables given,
e.g. ``psycopg:OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=``). Each round streams ``--turns`` turns
(``--concurrency`` at a time) through every server at once, each from its own client thread (or,
``--one-at-a-time``, one server after another in a rotating order), and reads each server's CPU
time from /proc around its turns: the settings share the load of the moment on a shared machine.
It prints each round's CPU per turn, then per setting the median over rounds, its ratio to ``off``,
the median of the rounds' own ratios to ``off`` (paired), and the spans the receiver got per turn.
A variant that is ``off`` again (``off2:OTEL_SDK_DISABLED=true``) shows the noise of the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
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

logging.getLogger("httpx").setLevel(logging.WARNING)

from bench.chat_stream import cpu_seconds, ensure_database, leancore_once, setup_data  # noqa: E402
from tests.fakes.llm_server import FakeLLM, Scenario, ThreadedServer, build_app, free_port  # noqa: E402
from tests.fakes.otlp_receiver import OTLPReceiver  # noqa: E402

# the product's defaults, whatever the shell running the bench exports (a test setup's own values)
DEFAULTS_UNSET = ("REDIS_URL", "DB_POOL_SIZE", "DB_CONN_MAX_AGE", "LOG_FORMAT", "METRICS_TOKEN")


def start_daphne(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "leancore.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{url}/health", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"the server on {url} never answered")


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:KEY=VALUE,KEY=VALUE``; a piece without ``=`` continues the value before it
    (``names:OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=asgi,psycopg``)."""
    name, _, assignments = text.partition(":")
    variables: dict[str, str] = {}
    key = ""
    for piece in assignments.split(","):
        if "=" in piece:
            key, _, value = piece.partition("=")
            variables[key] = value
        elif key:
            variables[key] += f",{piece}"
    return name, variables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--turns", type=int, default=30, help="turns per server per round")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--deltas", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=10)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,…")
    parser.add_argument("--one-at-a-time", action="store_true", help="each round, the servers one after another")
    args = parser.parse_args()

    fake = FakeLLM()
    scenario = Scenario(chunks=[f"w{i} " for i in range(args.deltas)], delay=args.gap_ms / 1000, usage=(50, 60))
    fake.next = lambda: scenario  # every request gets the same scenario
    fake.requests = type("Sink", (), {"append": lambda self, item: None})()
    fake.headers = fake.requests
    with ThreadedServer(build_app(fake)) as llm, OTLPReceiver() as receiver:
        ensure_database()
        token, specialist = setup_data()
        base = {key: value for key, value in os.environ.items() if key not in DEFAULTS_UNSET}
        base.update(OPENAI_BASE_URL=f"{llm.url}/v1", OPENAI_API_KEY="x", DEBUG="false")
        base = {key: value for key, value in base.items() if not key.startswith("OTEL_")}
        traced = dict(base, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_SERVICE_NAME="on")
        settings = {"off": base, "on": traced}
        for name, extra in map(parse_variant, args.variant):
            settings[name] = dict(traced, OTEL_SERVICE_NAME=name, **extra)
        servers = {name: start_daphne(env) for name, env in settings.items()}
        try:
            for _, url in servers.values():  # warm up every path
                for _ in range(5):
                    leancore_once(url, token, specialist)
            time.sleep(1)
            with receiver._lock:
                receiver.spans.clear()
            print(
                f"{args.rounds} rounds x {args.turns} turns per server ({args.concurrency} at a time; "
                f"{'one server after another' if args.one_at_a_time else 'every server at once'}), "
                f"{args.deltas} deltas {args.gap_ms:g} ms apart; server CPU ms per turn"
            )
            names = list(servers)
            per_round: dict[str, list[float]] = {name: [] for name in names}
            turns = dict.fromkeys(names, 0)

            def run(name: str) -> float:
                """``--turns`` turns through one server: its CPU ms per turn."""
                process, url = servers[name]
                before = cpu_seconds(process.pid)
                with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                    list(pool.map(lambda _: leancore_once(url, token, specialist), range(args.turns)))
                return (cpu_seconds(process.pid) - before) / args.turns * 1000

            for index in range(args.rounds):
                if args.one_at_a_time:
                    order = names[index % len(names) :] + names[: index % len(names)]
                    measured = {name: run(name) for name in order}
                else:  # every server at once: they share the machine's load of the moment
                    with ThreadPoolExecutor(max_workers=len(names)) as servers_at_once:
                        measured = dict(zip(names, servers_at_once.map(run, names), strict=True))
                for name in names:
                    per_round[name].append(measured[name])
                    turns[name] += args.turns
                print(f"round {index + 1:>2}: " + "  ".join(f"{n} {per_round[n][-1]:6.2f}" for n in names), flush=True)
            time.sleep(2)  # the last batch of spans (OTEL_BSP_SCHEDULE_DELAY, 5 s by default) may still come
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=30)  # a traced process flushes its queue as it stops
            off = statistics.median(per_round["off"])
            print(
                f"\n{'setting':<14} {'median':>8} {'min':>8} {'max':>8} {'vs off':>8} {'paired':>8} {'spans/turn':>11}"
            )
            for name in names:
                values = per_round[name]
                median = statistics.median(values)
                # the median of the rounds' own ratios to off (each round's settings saw the same load)
                paired = statistics.median(v / o for v, o in zip(values, per_round["off"], strict=True))
                spans = sum(1 for span in receiver.spans if span.resource.get("service.name") == name)
                print(
                    f"{name:<14} {median:8.2f} {min(values):8.2f} {max(values):8.2f} "
                    f"{(median / off - 1) * 100:+7.1f}% {(paired - 1) * 100:+7.1f}% {spans / turns[name]:11.1f}"
                )
        finally:
            for process, _ in servers.values():
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)


if __name__ == "__main__":
    main()

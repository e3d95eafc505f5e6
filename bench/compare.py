"""Side by side, in one run: a fake OpenAI-compatible provider called directly, the LiteLLM proxy in
front of it, and LeanCore's ``POST /api/chat/stream`` in front of it (one Daphne process, and the
all-cores ``manage.py serve``).

    .venv/bin/python bench/compare.py                       # everything (first run installs LiteLLM: ~3 min)
    .venv/bin/python bench/compare.py --skip-litellm --levels 1:20,10:100

For each target and concurrency level (C concurrent clients, N streams in all) it prints time to
first token and total time (p50/p95/p99), what the target adds to the direct call (TTFT p50) and the
ratio of its total time to the direct call's and to LiteLLM's, the server CPU per stream (the
target's whole process tree, from /proc), errors (a non-200, or a stream without its end event) and
the resident memory of the target's processes after the level. Real SSE clients: LeanCore is asked
with ``Accept: text/event-stream``. The fake streams ``--deltas`` deltas ``--gap-ms`` apart on
absolute deadlines. LiteLLM is pinned (``--litellm-spec``) and installed into its own virtualenv
under ``var/bench/``. LeanCore runs on a fresh PostgreSQL database (``BENCH_DATABASE_URL``) with its
default settings (pool included) and Redis when it answers (``BENCH_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
PY = Path(sys.executable)
BIN = PY.parent
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- the fake provider
def fake_app(deltas: int, gap: float):
    counter = iter(range(10**12))

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"].rstrip("/") in ("/health", "/v1/models"):
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": b'{"object":"list","data":[]}'})
            return
        request = json.loads(body or b"{}")
        loop = asyncio.get_running_loop()
        start = loop.time()
        cid = f"chatcmpl-{next(counter)}"
        model = request.get("model", "bench-gpt")

        def chunk(delta: dict, finish: str | None, usage: dict | None = None, choices: bool = True) -> bytes:
            obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model}
            obj["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []
            if usage is not None or not choices:
                obj["usage"] = usage
            return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send(
            {"type": "http.response.body", "body": chunk({"role": "assistant", "content": ""}, None), "more_body": True}
        )
        for i in range(deltas):
            delay = start + i * gap - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": chunk({"content": f"w{i} "}, None), "more_body": True})
        prompt = sum(len(str(m.get("content", "")).split()) + 4 for m in request.get("messages", []))
        tail = chunk({}, "stop")
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": prompt, "completion_tokens": deltas, "total_tokens": prompt + deltas}
            tail += chunk({}, None, usage, choices=False)
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})

    return app


# --------------------------------------------------------------------------- processes
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def tree(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def cpu_seconds(pid: int) -> float:
    total = 0
    for child in tree(pid):
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / TICKS


def rss_mb(pid: int) -> list[float]:
    sizes = []
    for child in tree(pid):
        with contextlib.suppress(OSError):
            sizes.append(int(Path(f"/proc/{child}/statm").read_text().split()[1]) * PAGE / 2**20)
    return sizes


@dataclass
class Target:
    name: str
    kind: str  # "openai" | "leancore"
    url: str
    pid: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env or os.environ.copy(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def litellm(spec: str, fake_url: str) -> tuple[subprocess.Popen, Target]:
    venv = VAR / "litellm-venv"
    stamp = venv / f".installed-{spec.replace('/', '_')}"
    if not stamp.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(PY), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", spec], check=True)
        stamp.touch()
    config = VAR / "litellm.yaml"
    master_key = "sk-bench-" + "0123456789abcdef" * 2
    config.write_text(
        "model_list:\n  - model_name: bench-gpt\n    litellm_params:\n      model: openai/bench-gpt\n"
        f"      api_base: {fake_url}/v1\n      api_key: bench\n"
        "litellm_settings:\n  drop_params: true\n  callbacks: []\n  success_callback: []\n  failure_callback: []\n"
        "  turn_off_message_logging: true\n"
        f"general_settings:\n  master_key: {master_key}\n  disable_spend_logs: true\n"
    )
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "REDIS_HOST")  # LiteLLM would use them
    }
    env.update(  # nothing phones home: bundled cost map and configs, no telemetry
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOCAL_BLOG_POSTS="True",
        LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS="True",
        LITELLM_LOCAL_POLICY_TEMPLATES="True",
        LITELLM_LOCAL_AUTOROUTER_PRESETS="True",
        LITELLM_TELEMETRY_DISABLED="True",
        DO_NOT_TRACK="1",
        LITELLM_MODE="PRODUCTION",
        LITELLM_LOG="ERROR",
        HF_HUB_OFFLINE="1",
    )
    process = start(
        [
            str(venv / "bin" / "litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        VAR / "litellm.log",
        env,
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    headers = {"Authorization": f"Bearer {master_key}"}
    return process, Target("litellm-1w", "openai", f"http://127.0.0.1:{port}/v1", process.pid, headers)


def leancore_env(fake_url: str, database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "THROTTLE_CHAT": "100000000/min",
        "ACCESS_TOKEN_LIFETIME": "86400",
        "LOG_LEVEL": "WARNING",
    }
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    if subprocess.run(["redis-cli", "-u", redis_url, "ping"], capture_output=True, check=False).returncode == 0:
        env["REDIS_URL"] = redis_url
    for name in ("DB_POOL_SIZE", "DB_CONN_MAX_AGE", "EMBEDDED_WORKER"):
        env.pop(name, None)  # the product's own defaults
    return env


def prepare_leancore(env: dict[str, str]) -> dict[str, str]:
    """A fresh database with a bench model on the openai provider, an org with plenty of credits and a
    specialist; returns the headers and body of a stream request."""
    import psycopg

    url = env["DATABASE_URL"]
    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres".replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    manage = [str(PY), "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    rates = VAR / "rates.json"
    rates.write_text(
        json.dumps(
            [
                {
                    "model": "bench-gpt",
                    "provider": "openai",
                    "displayName": "Bench",
                    "inputCreditsPerMillion": "1",
                    "outputCreditsPerMillion": "2",
                    "contextWindow": 128000,
                }
            ]
        )
    )
    subprocess.run([*manage, "load_model_rates", str(rates)], cwd=ROOT, env=env, check=True, capture_output=True)
    script = (
        "from accounts.models import User; from signup.services import sign_up; from billing import services as b;"
        "from specialists.models import Specialist; from accounts.services import issue_tokens; import json;"
        "u, o = sign_up(organization_name='Bench', name='Bench', email='bench@example.com', password='Bench-Passw0rd!x');"
        "from decimal import Decimal; b.grant_credits(org=o, amount=Decimal(10**9), reason='bench');"
        "s = Specialist.all_orgs.create(organization=o, name='Bench', instructions='Answer.', model='bench-gpt', max_output_tokens=256);"
        "print(json.dumps({'token': issue_tokens(user=u).access, 'org': str(o.pk), 'specialist': str(s.pk)}))"
    )
    out = subprocess.run(
        [*manage, "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {"token": data["token"], "org": data["org"], "specialist": data["specialist"]}


# --------------------------------------------------------------------------- the load client
@dataclass
class Sample:
    ok: bool
    ttft: float = 0.0
    total: float = 0.0


async def one(client: Any, target: Target) -> Sample:
    started = time.perf_counter()
    first = 0.0
    try:
        if target.kind == "openai":
            body = {
                "model": "bench-gpt",
                "messages": [{"role": "user", "content": "Plan our Q3 budget"}],
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": 256,
            }
            url, headers = f"{target.url}/chat/completions", target.headers or {"Authorization": "Bearer bench"}
        else:
            body, url = target.body, f"{target.url}/api/chat/stream"
            headers = {**target.headers, "Accept": "text/event-stream"}
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                return Sample(False)
            done = False
            event = ""
            async for line in response.aiter_lines():
                if target.kind == "openai":
                    if line.startswith("data: "):
                        if line == "data: [DONE]":
                            done = True
                        elif not first and '"content":"w' in line:
                            first = time.perf_counter()
                elif line.startswith("event: "):
                    event = line[7:]
                    if event == "delta" and not first:
                        first = time.perf_counter()
                    done = done or event == "done"
                    if event == "error":
                        return Sample(False)
            if not done or not first:
                return Sample(False)
    except Exception:
        return Sample(False)
    return Sample(True, first - started, time.perf_counter() - started)


async def level(target: Target, concurrency: int, requests: int) -> list[Sample]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        queue = iter(range(requests))
        samples: list[Sample] = []

        async def worker() -> None:
            for _ in queue:
                samples.append(await one(client, target))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Row:
    target: str
    concurrency: int
    requests: int
    ttft: list[float]
    total: list[float]
    errors: int
    cpu_ms: float | None
    rss: list[float]


def measure(target: Target, concurrency: int, requests: int) -> Row:
    asyncio.run(level(target, min(concurrency, 5), min(requests, 10)))  # warm up
    before = cpu_seconds(target.pid) if target.pid else None
    samples = asyncio.run(level(target, concurrency, requests))
    cpu = (cpu_seconds(target.pid) - before) * 1000 / requests if target.pid and before is not None else None
    good = [s for s in samples if s.ok]
    rss = rss_mb(target.pid) if target.pid else []
    return Row(
        target.name,
        concurrency,
        requests,
        [s.ttft * 1000 for s in good],
        [s.total * 1000 for s in good],
        len(samples) - len(good),
        cpu,
        rss,
    )


def table(rows: list[Row]) -> str:
    direct = {r.concurrency: r for r in rows if r.target == "direct"}
    peer = {r.concurrency: r for r in rows if r.target == "litellm-1w"}
    lines = [
        "| target | C | N | TTFT p50/p95/p99 ms | total p50/p95/p99 ms | +TTFT p50 | total × direct | total × LiteLLM "
        "| CPU ms/stream | errors | RSS MB (per process) |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        base, other = direct.get(r.concurrency), peer.get(r.concurrency)
        t50, tot50 = pct(r.ttft, 50), pct(r.total, 50)
        added = f"{t50 - pct(base.ttft, 50):+.1f}" if base and r.target != "direct" else ""
        ratio = f"{tot50 / pct(base.total, 50):.2f}" if base and r.target != "direct" else ""
        vs_peer = (
            f"{(tot50 / pct(base.total, 50)) / (pct(other.total, 50) / pct(base.total, 50)):.2f}"
            if (base and other and r.target not in ("direct", "litellm-1w"))
            else ""
        )
        cpu = f"{r.cpu_ms:.1f}" if r.cpu_ms is not None else ""
        rss = ", ".join(f"{m:.0f}" for m in r.rss[:8])
        lines.append(
            f"| {r.target} | {r.concurrency} | {r.requests} | {t50:.1f} / {pct(r.ttft, 95):.1f} / {pct(r.ttft, 99):.1f} "
            f"| {tot50:.1f} / {pct(r.total, 95):.1f} / {pct(r.total, 99):.1f} | {added} | {ratio} | {vs_peer} | {cpu} "
            f"| {r.errors} | {rss} |"
        )
    return "\n".join(lines)


def parse_levels(text: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in item.split(":")) for item in text.split(",") if item]  # type: ignore[misc]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1:30,10:150,50:300", help="concurrency:streams, comma-separated")
    parser.add_argument("--all-cores-levels", default="1:30,10:150,50:300,200:600")
    parser.add_argument("--deltas", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=10)
    parser.add_argument("--litellm-spec", default="litellm[proxy]==1.108.7")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-all-cores", action="store_true")
    parser.add_argument("--serve-fake", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        import uvicorn

        uvicorn.run(
            fake_app(args.deltas, args.gap_ms / 1000), host="127.0.0.1", port=args.serve_fake, log_level="warning"
        )
        return 0

    VAR.mkdir(parents=True, exist_ok=True)
    levels, wide = parse_levels(args.levels), parse_levels(args.all_cores_levels)
    processes: list[subprocess.Popen] = []
    rows: list[Row] = []
    try:
        fake_port = free_port()
        fake = start(
            [
                str(PY),
                __file__,
                "--serve-fake",
                str(fake_port),
                "--deltas",
                str(args.deltas),
                "--gap-ms",
                str(args.gap_ms),
            ],
            VAR / "fake.log",
        )
        processes.append(fake)
        fake_url = f"http://127.0.0.1:{fake_port}"
        wait_http(f"{fake_url}/health")
        targets = [Target("direct", "openai", f"{fake_url}/v1")]
        if not args.skip_litellm:
            process, target = litellm(args.litellm_spec, fake_url)
            processes.append(process)
            targets.append(target)
        env = leancore_env(
            fake_url, os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leancore_compare")
        )
        data = prepare_leancore(env)
        request = {
            "headers": {"Authorization": f"Bearer {data['token']}", "X-Org-Id": data["org"]},
            "body": {"specialistId": data["specialist"], "message": "Plan our Q3 budget"},
        }
        for concurrency, requests in levels:
            for target in targets:
                rows.append(measure(target, concurrency, requests))
        port = free_port()
        single = start(
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "leancore.asgi:application"],
            VAR / "lean-1.log",
            env,
        )
        processes.append(single)
        wait_http(f"http://127.0.0.1:{port}/health")
        lean = Target("leancore-1p", "leancore", f"http://127.0.0.1:{port}", single.pid, **request)
        for concurrency, requests in levels:
            rows.append(measure(lean, concurrency, requests))
        stop(single)
        if not args.skip_all_cores and "REDIS_URL" in env:
            port = free_port()
            cores = os.cpu_count() or 1
            served = start(
                [str(PY), "manage.py", "serve", "--port", str(port), "--processes", str(cores), "--workers", "1"],
                VAR / "lean-all.log",
                env,
            )
            processes.append(served)
            wait_http(f"http://127.0.0.1:{port}/health")
            lean_all = Target(f"leancore-{cores}p", "leancore", f"http://127.0.0.1:{port}", served.pid, **request)
            for concurrency, requests in wide:
                rows.append(measure(lean_all, concurrency, requests))
                if (concurrency, requests) not in levels:  # the baseline at this level too
                    rows.append(measure(targets[0], concurrency, requests))
    finally:
        for process in reversed(processes):
            stop(process)
    rows.sort(key=lambda r: (r.concurrency, r.target))
    print(
        f"fake provider: {args.deltas} deltas {args.gap_ms:g} ms apart; {os.cpu_count()} cores; "
        f"CPU = the target's process tree per stream"
    )
    print(table(rows))
    print(
        "medians:",
        json.dumps({f"{r.target}@{r.concurrency}": round(statistics.median(r.total), 1) for r in rows if r.total}),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Procfile, run as a Procfile runner runs it (honcho): the production launcher comes up on the
port it is given, answers /health, and leaves no process behind when the runner is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.fakes.llm_server import free_port
from tests.servers import BIN, ROOT, redis_url_for_tests, server_env, wait_for_disconnect


def _processes_marked(marker: str) -> list[int]:
    """Every process whose environment carries the marker (the runner and all it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def test_the_procfile_is_web_on_serve():
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line and not line.startswith("#")]
    assert [line.split(":", 1)[0] for line in lines] == ["web"]
    assert "python manage.py serve" in lines[0]
    assert "$PORT" in lines[0] or "${PORT" in lines[0]
    assert f"\n{lines[0]}\n" in (ROOT / "README.md").read_text()  # the README shows it as it is


@pytest.mark.django_db(transaction=True)
def test_honcho_starts_the_procfile_and_stops_every_process(tmp_path, bundled_data):
    port = free_port()
    marker_name, marker_value = "LEANCORE_PROCFILE_TEST", uuid.uuid4().hex
    marker = f"{marker_name}={marker_value}"
    env = server_env(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` is the project's
            "REDIS_URL": redis_url_for_tests(),  # two server processes share WebSocket events
            "SERVE_OPTIONS": "--processes 2 --workers 1",
            marker_name: marker_value,
        }
    )
    env.pop("PORT", None)
    empty_env_file = tmp_path / "empty.env"  # never a developer's .env
    empty_env_file.write_text("")
    log = tmp_path / "honcho.log"
    runner = subprocess.Popen(
        [str(BIN / "honcho"), "-e", str(empty_env_file), "start", "--port", str(port), "--no-colour", "web"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert runner.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # honcho, its shell, serve, two servers and a worker
        assert len(_processes_marked(marker)) >= 5, _processes_marked(marker)
    finally:
        runner.send_signal(signal.SIGINT)  # Ctrl-C, as at a terminal
        try:
            runner.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
            pytest.fail(f"honcho did not stop:\n{log.read_text()}")
    deadline = time.monotonic() + 15
    while _processes_marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    output = log.read_text()
    assert _processes_marked(marker) == [], output
    assert "2 server process(es)" in output, output
    assert "1 worker(s)" in output, output
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    wait_for_disconnect(env["DATABASE_URL"])

"""A server process keeps what it imported out of the garbage collector's walks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc
import leancore.asgi  # noqa: F401
print(gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_the_asgi_application_freezes_what_it_built_at_startup() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leancore.settings", "EMBEDDED_WORKER": "false"}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    frozen, walked = (int(number) for number in probe.stdout.split())
    assert frozen > 100_000  # the framework and the app, imported
    assert walked < frozen // 10  # what a full collection still walks: only what was made since

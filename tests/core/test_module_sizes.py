"""Rooms of a readable size: no module of the application is over 400 lines. The tree is walked (a new
module is checked the day it lands); tests, benches and migrations are not the application."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
# Not the application: its tests and benches, migrations (generated), and what is not the project's.
SKIPPED_DIRS = {"tests", "bench", "migrations", "node_modules", "__pycache__", "var", "media", "staticfiles"}


def app_modules(root: Path) -> list[Path]:
    """Every Python module of the application under ``root``, hidden directories (``.venv``, ``.git``)
    and the skipped ones aside."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".") and name not in SKIPPED_DIRS]
        found += [Path(directory, name) for name in files if name.endswith(".py")]
    return sorted(found)


def oversized(root: Path) -> dict[str, int]:
    """``{module: lines}`` of every application module over ``MAX_LINES`` lines."""
    sizes = {str(path.relative_to(root)): len(path.read_bytes().splitlines()) for path in app_modules(root)}
    return {name: lines for name, lines in sizes.items() if lines > MAX_LINES}


def test_no_application_module_is_over_400_lines():
    assert not oversized(ROOT), "split these by responsibility, so that each file's name says what it holds"


def test_the_walk_covers_the_application():
    modules = {str(path.relative_to(ROOT)) for path in app_modules(ROOT)}
    assert {"manage.py", "leancore/urls.py", "billing/admin/ledger.py", "chat/providers/base.py"} <= modules
    assert not any(name.startswith(("tests/", "bench/", ".venv/")) or "/migrations/" in name for name in modules)


def test_a_module_over_400_lines_fails(tmp_path):
    """The check fires: a module one line over, anywhere in an app, is named; one at the limit, and one
    in tests, benches, migrations or a hidden directory, are not."""
    (tmp_path / "app" / "deep").mkdir(parents=True)
    (tmp_path / "app" / "deep" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "app" / "fits.py").write_text("x = 1\n" * MAX_LINES)
    for skipped in ("tests", "bench", "app/migrations", ".venv/lib"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "long.py").write_text("x = 1\n" * 1000)
    assert oversized(tmp_path) == {"app/deep/long.py": MAX_LINES + 1}

"""Types that say what they carry: the application code (the packages mypy checks, migrations aside)
names ``Any`` fewer than ``MAX_ANY`` times, each where JSON from outside or a framework's hook leaves
no better type, and every ``# type: ignore`` names its error code and says why in a comment after it
(``# type: ignore[attr-defined]  # Django's hook``). Read with ``tokenize``: a word in a docstring or
a comment is no use of ``Any``, and an import line is none either."""

from __future__ import annotations

import io
import re
import tokenize
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_ANY = 40
# ``type: ignore[code]`` or ``[code, code]``, then a comment of its own with the reason.
EXPLAINED_IGNORE = re.compile(r"type:\s*ignore\[[a-z-]+(?:,\s*[a-z-]+)*\]\s*#\s*\S")


def app_modules(root: Path) -> list[Path]:
    """The modules of every package ``[tool.mypy] packages`` names, migrations aside."""
    packages = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]["packages"]
    return sorted(
        path for package in packages for path in (root / package).rglob("*.py") if "migrations" not in path.parts
    )


def _tokens(source: str) -> Iterator[tokenize.TokenInfo]:
    return tokenize.generate_tokens(io.StringIO(source).readline)


def any_uses(source: str) -> list[int]:
    """The lines that name ``Any`` in code (not in an import, a string or a comment)."""
    lines = source.splitlines()
    found = []
    for token in _tokens(source):
        if token.type == tokenize.NAME and token.string == "Any":
            line = lines[token.start[0] - 1].lstrip()
            if not line.startswith(("from ", "import ")):
                found.append(token.start[0])
    return sorted(set(found))


def unexplained_ignores(source: str) -> list[int]:
    """The lines whose ``# type: ignore`` has no error code or no reason after it."""
    return [
        token.start[0]
        for token in _tokens(source)
        if token.type == tokenize.COMMENT
        and re.search(r"type:\s*ignore", token.string)
        and not EXPLAINED_IGNORE.search(token.string)
    ]


def _found(check: Callable[[str], list[int]]) -> dict[str, list[int]]:
    results = {str(path.relative_to(ROOT)): check(path.read_text()) for path in app_modules(ROOT)}
    return {name: lines for name, lines in results.items() if lines}


def test_any_is_rare_in_the_application():
    uses = _found(any_uses)
    total = sum(len(lines) for lines in uses.values())
    assert total < MAX_ANY, f"{total} lines name Any (at most {MAX_ANY - 1}): {uses}"


def test_every_type_ignore_names_its_code_and_says_why():
    assert not _found(unexplained_ignores), "write `# type: ignore[code]  # why` (or type it and drop the ignore)"


def test_the_checks_can_fire():
    source = (
        "from typing import Any\n"
        "def f(x: Any) -> dict[str, Any]:  # Any in a comment is no use\n"
        '    """Any in a docstring is none either."""\n'
        "    y = x.z  # type: ignore[attr-defined]\n"
        "    w = x.v  # type: ignore\n"
        "    return y.q  # type: ignore[attr-defined]  # the library's own attribute\n"
    )
    assert any_uses(source) == [2]
    assert unexplained_ignores(source) == [4, 5]
    modules = {str(path.relative_to(ROOT)) for path in app_modules(ROOT)}
    assert {"core/errors.py", "chat/providers/base.py", "leancore/urls.py"} <= modules
    assert not any("/migrations/" in name for name in modules)

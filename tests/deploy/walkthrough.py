"""The README's walk-through, as the shell script it is: its ``bash`` blocks between the markers."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- walkthrough -->", "<!-- /walkthrough -->"
BASE_LINE = "BASE=http://127.0.0.1:8000"
STEP = "@@ step {} @@"


def blocks(readme: Path = README) -> list[str]:
    text = readme.read_text()
    section = text[text.index(START) + len(START) : text.index(END)]
    return [block.strip("\n") for block in re.findall(r"^```bash\n(.*?)^```$", section, flags=re.S | re.M)]


def script(base: str, readme: Path = README) -> str:
    """Every block in order, in one shell, each announced by a step line (so that its output can be
    told apart); only the base URL is the test server's."""
    found = blocks(readme)
    assert found, "no bash blocks between the markers"
    assert found[0].splitlines()[0] == BASE_LINE, found[:1]
    parts = [f"echo '{STEP.format(i)}'\n{block}" for i, block in enumerate(found)]
    return "\n".join(parts).replace(BASE_LINE, f"BASE={base}", 1) + "\n"


def steps(output: str) -> list[str]:
    """The output of each block."""
    pieces = re.split(r"^@@ step \d+ @@\n", output, flags=re.M)
    return pieces[1:]


if __name__ == "__main__":  # print the walk-through as one script (by hand: `... | bash`)
    import sys

    sys.stdout.write(script(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"))

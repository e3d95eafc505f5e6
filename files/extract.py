"""Text extraction of an upload, bounded in time and size.

A PDF is parsed by pypdf in a child process of its own (``python -I files/extract.py``), killed when
it runs past ``UPLOAD_EXTRACT_SECONDS``: pure-Python parsing of a crafted file can take minutes of
CPU and cannot be interrupted inside a thread. The child imports nothing of the project (only pypdf),
so it starts without Django. Text formats are decoded here; every text stops at
``UPLOAD_EXTRACT_MAX_CHARS``. ``None`` means the text could not be extracted within those bounds.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import subprocess
import sys
from pathlib import Path

from pypdf import PdfReader

WORKER = Path(__file__).resolve()
CHILD_MEMORY_BYTES = 1024 * 1024 * 1024  # the child's address space: a decompression bomb fails, not the host


def pdf_text(data: bytes, *, max_chars: int) -> str:
    """pypdf's text of each page, in order, stopping once ``max_chars`` are reached (runs in the child)."""
    reader = PdfReader(io.BytesIO(data))
    parts: list[str] = []
    length = 0
    for page in reader.pages:
        text = page.extract_text() or ""
        parts.append(text)
        length += len(text) + 2
        if length >= max_chars:
            break
    return "\n\n".join(parts)[:max_chars]


def bounded_pdf_text(data: bytes, *, seconds: float, max_chars: int) -> str | None:
    """The PDF's text from a child process given ``seconds`` (then killed); None when it ran out of
    time, or the file is no PDF pypdf can read."""
    try:
        done = subprocess.run(  # noqa: S603 -- our own interpreter and script, no shell, no user input in argv
            [sys.executable, "-I", str(WORKER), str(max_chars)],
            input=data,
            capture_output=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")[:max_chars]


def extract_text(data: bytes, content_type: str, *, seconds: float, max_chars: int) -> str | None:
    """Text for the model: text formats as they are (JSON pretty-printed), PDF through pypdf (bounded);
    images have none."""
    if content_type == "application/pdf":
        return bounded_pdf_text(data, seconds=seconds, max_chars=max_chars)
    if content_type.startswith("image/"):
        return None
    text = data.decode("utf-8", errors="replace")
    if content_type == "application/json" and len(text) <= max_chars:
        with contextlib.suppress(json.JSONDecodeError, RecursionError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return text[:max_chars]


def _main() -> None:
    """The child: a PDF on stdin, its text on stdout; any failure is a non-zero exit."""
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    max_chars = int(sys.argv[1])
    text = pdf_text(sys.stdin.buffer.read(), max_chars=max_chars)
    sys.stdout.buffer.write(text.encode("utf-8", errors="replace"))


if __name__ == "__main__":
    _main()

"""Text extraction of an upload, bounded in time and size.

A PDF is parsed by pypdf in a child process of its own (``python -I files/extract.py``), killed when
it runs past ``UPLOAD_EXTRACT_SECONDS``: pure-Python parsing of a crafted file can take minutes of
CPU and cannot be interrupted inside a thread. The child imports nothing of the project (only pypdf),
so it starts without Django. At most ``UPLOAD_EXTRACT_CONCURRENCY`` children run at once in a
process: an upload that finds them all busy for SLOT_WAIT_SECONDS is stored without text rather
than queued (each child may take a CPU for ``UPLOAD_EXTRACT_SECONDS`` and a GiB of memory). Text
formats are decoded here; every text stops at ``UPLOAD_EXTRACT_MAX_CHARS``. ``None`` means the text
could not be extracted within those bounds.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import subprocess
import sys
import threading
from pathlib import Path

from pypdf import PdfReader

WORKER = Path(__file__).resolve()
CHILD_MEMORY_BYTES = 1024 * 1024 * 1024  # the child's address space: a decompression bomb fails, not the host
SLOT_WAIT_SECONDS = 1.0  # how long an upload waits for a free extraction slot before going without text
_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}  # by UPLOAD_EXTRACT_CONCURRENCY: one bound per process


def extraction_slots(concurrency: int) -> threading.BoundedSemaphore:
    """The process-wide bound on PDF children running at once (at least one)."""
    size = max(1, concurrency)
    with _slots_lock:
        return _slots.setdefault(size, threading.BoundedSemaphore(size))


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


def bounded_pdf_text(data: bytes, *, seconds: float, max_chars: int, concurrency: int = 2) -> str | None:
    """The PDF's text from a child process given ``seconds`` (then killed), once one of the process's
    ``concurrency`` slots is free; None when it ran out of time, the file is no PDF pypdf can read, or
    no slot came free within SLOT_WAIT_SECONDS."""
    slots = extraction_slots(concurrency)
    if not slots.acquire(timeout=SLOT_WAIT_SECONDS):
        return None
    try:
        return _child_text(data, seconds=seconds, max_chars=max_chars)
    finally:
        slots.release()


def _child_text(data: bytes, *, seconds: float, max_chars: int) -> str | None:
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


def extract_text(data: bytes, content_type: str, *, seconds: float, max_chars: int, concurrency: int = 2) -> str | None:
    """Text for the model: text formats as they are (JSON pretty-printed), PDF through pypdf (bounded,
    at most ``concurrency`` at once); images have none."""
    if content_type == "application/pdf":
        return bounded_pdf_text(data, seconds=seconds, max_chars=max_chars, concurrency=concurrency)
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

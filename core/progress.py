"""Progress of a long management command: a bar redrawn in place on a terminal, plain lines otherwise
(a log file, a pipe, a test's StringIO)."""

from __future__ import annotations

import shutil
from typing import TextIO

from django.core.management.base import OutputWrapper


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed stream
        return False


class Progress:
    """``step(label)`` after each of ``total`` items; ``close()`` (or leaving the ``with``) ends the bar.

    On a terminal: ``\\r[#########---------] 3/10 label``, redrawn on one line. Otherwise one plain
    line per step: ``3/10 label``. ``step(label, advance=0)`` redraws the bar with what is being worked
    on now (nothing when not a terminal). ``width`` is the bar's length in characters."""

    def __init__(self, stream: OutputWrapper | TextIO, total: int, *, title: str = "", width: int = 30) -> None:
        if not isinstance(stream, OutputWrapper):  # a plain stream: lines end as a command's do
            stream = OutputWrapper(stream)
        self.stream: OutputWrapper = stream
        self.total = max(total, 0)
        self.done = 0
        self.width = width
        self.tty = _is_tty(self.stream)
        self._drawn = 0
        if title:
            self.stream.write(title)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bar(self) -> str:
        filled = int(self.width * self.done / self.total) if self.total else self.width
        return "[" + "#" * filled + "-" * (self.width - filled) + "]"

    def step(self, label: str = "", *, advance: int = 1) -> None:
        self.done = min(self.done + advance, self.total) if self.total else self.done + advance
        counter = f"{self.done}/{self.total}"
        if not self.tty:
            if not advance:  # a redraw (what is being worked on) only matters on a terminal
                return
            self.stream.write(f"{counter} {label}".rstrip())
            return
        columns = shutil.get_terminal_size((100, 20)).columns
        line = f"{self.bar()} {counter} {label}".rstrip()[: max(columns - 1, 20)]
        self.stream.write("\r" + line.ljust(self._drawn), ending="")
        self._drawn = len(line)
        self.stream.flush()

    def note(self, message: str) -> None:
        """A line of its own (an error, a warning) that the bar then continues below."""
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r", ending="")
            self._drawn = 0
        self.stream.write(message)

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("")  # end the bar's line
            self._drawn = 0

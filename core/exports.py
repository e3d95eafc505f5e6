"""CSV exports that are safe to open in a spreadsheet: a cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return would be read as a formula (tenant-written names reach operators'
spreadsheets), so it is prefixed with ``'`` (the OWASP rule). A cell that is a plain number
(``-20.000000``, ``+5``) is left as it is. Every CSV the product writes goes through ``csv_writer``."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


class _Writable(Protocol):
    def write(self, text: str, /) -> object: ...


def safe_cell(value: object) -> object:
    """``value`` as a spreadsheet cannot run it: text that starts like a formula gets a leading ``'``
    (numbers and other values are written as they are)."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS) or PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


class SafeWriter:
    """``csv.writer`` whose every cell goes through ``safe_cell``."""

    def __init__(self, stream: _Writable) -> None:
        self._writer = csv.writer(stream)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(stream: _Writable) -> SafeWriter:
    return SafeWriter(stream)

"""Fixtures of the chat tests: the SQL statements a turn runs (``test_turn_statements*``)."""

from __future__ import annotations

import pytest
from django.db.backends.utils import CursorWrapper

from tests.chat.test_turn_statements import CONTROL, _label


@pytest.fixture
def everything(monkeypatch) -> list[str]:
    """Every statement run through Django's cursors, transaction control included (psycopg sends
    BEGIN and COMMIT itself: they are not here)."""
    statements: list[str] = []
    execute = CursorWrapper.execute

    def recording(self, sql, params=None):
        statements.append(sql if CONTROL.match(sql) else _label(sql))
        return execute(self, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", recording)
    return statements


class Counted:
    """The statements counted (transaction control left out) of ``everything``."""

    def __init__(self, everything: list[str]) -> None:
        self.everything = everything

    def clear(self) -> None:
        self.everything.clear()

    def snapshot(self) -> list[str]:
        return [sql for sql in self.everything if not CONTROL.match(sql)]


@pytest.fixture
def recorded(everything) -> Counted:
    return Counted(everything)

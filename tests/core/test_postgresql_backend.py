"""The PostgreSQL backend reads timestamps with psycopg's own loader (C code) and gives the values
Django's loader gives: aware, in ``datetime.UTC``, through plain and named (server-side) cursors."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection, transaction
from django.db.backends.postgresql.psycopg_any import get_adapters_template
from psycopg.adapt import Transformer
from psycopg.pq import Format
from psycopg.types.datetime import TimestamptzLoader

from accounts.models import User

pytestmark = pytest.mark.django_db

TIMESTAMPTZ = 1184  # PostgreSQL's oid of timestamptz


def _loader_of_connection() -> type:
    connection.ensure_connection()
    loader: type = connection.connection.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
    return loader


def test_the_settings_select_the_backend_for_postgresql():
    assert connection.settings_dict["ENGINE"] == "core.postgresql"


def test_timestamps_are_read_by_psycopgs_own_loader_not_a_python_wrapper():
    loader = _loader_of_connection()
    assert loader.__name__ == TimestamptzLoader.__name__
    assert "psycopg_binary" in loader.__module__ or loader is TimestamptzLoader  # C when installed
    assert "load" not in vars(loader) or loader is TimestamptzLoader  # no Python override of load


def test_the_values_are_those_of_djangos_loader_in_utc():
    texts = [b"2026-12-07 14:53:47.123456+00", b"1999-01-01 00:00:00+00", b"2026-03-29 01:30:00.5+00"]
    with connection.cursor() as cursor:
        transformer = Transformer(cursor.cursor)
    ours = transformer.get_loader(TIMESTAMPTZ, Format.TEXT)
    djangos = Transformer(get_adapters_template(True, datetime.UTC)).get_loader(TIMESTAMPTZ, Format.TEXT)
    for text in texts:
        mine, theirs = ours.load(text), djangos.load(text)
        assert mine == theirs
        assert mine.tzinfo is datetime.UTC
        assert theirs.tzinfo is datetime.UTC


def test_orm_reads_through_plain_and_named_cursors_are_aware_and_in_utc():
    joined = datetime.datetime(2026, 12, 7, 14, 53, 47, 123456, tzinfo=datetime.UTC)
    User.objects.create_user(email="utc@example.com", password="x-Long-pass-1")
    User.objects.filter(email="utc@example.com").update(date_joined=joined)
    plain = User.objects.get(email="utc@example.com").date_joined
    with transaction.atomic():  # a server-side cursor: iterator() in a transaction
        named = next(User.objects.filter(email="utc@example.com").iterator(chunk_size=10)).date_joined
    for value in (plain, named):
        assert value == joined
        assert value.tzinfo is datetime.UTC


def test_a_connection_in_another_zone_keeps_djangos_loader(settings):
    """The zone Django is asked for (DATABASES' TIME_ZONE) is given to every value: Django's loader."""
    from core.postgresql.base import DatabaseWrapper

    wrapper = DatabaseWrapper({**connection.settings_dict, "TIME_ZONE": "Europe/Paris"}, alias="paris")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT '2026-12-07 12:00:00+00'::timestamptz")
            (value,) = cursor.fetchone()
        assert value.tzinfo is not datetime.UTC
        assert str(value.tzinfo) == "Europe/Paris"
        assert value == datetime.datetime(2026, 12, 7, 12, tzinfo=datetime.UTC)
    finally:
        wrapper.close()


def test_a_zone_changed_after_connecting_is_given_to_each_cursor(settings):
    """The loader is chosen when a connection opens; a zone changed later (a test's settings) is
    still what a cursor reads in: naive values without time zone support."""
    connection.ensure_connection()
    assert _loader_of_connection().__name__ == TimestamptzLoader.__name__  # psycopg's, chosen at connect
    settings.USE_TZ = False
    with connection.cursor() as cursor:
        cursor.execute("SELECT '2026-12-07 12:00:00+00'::timestamptz")
        (value,) = cursor.fetchone()
    assert value.tzinfo is None
    assert value == datetime.datetime(2026, 12, 7, 12)

"""CSV answers of list endpoints: negotiated by ``Accept: text/csv``, streamed in chunks.

Each chunk is read in a database access of its own, and the connection is given back (to the pool)
right after it: a slow client reading a large export never holds a database connection while it
reads. Under ASGI the stream is an async generator that reads each chunk in one thread hop; under
WSGI a plain generator does the same in the request's thread. Every cell goes through
``core.exports.csv_writer`` (formula-like text escaped, plain numbers left as they are).
"""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from core.db import in_thread, release_connections
from core.exports import csv_writer

CSV_MEDIA_TYPE = "text/csv"
CHUNK_ROWS = 1000

# One chunk: the rows read, and the cursor of the next chunk (None after the last one).
type Chunk[C] = tuple[Sequence[Sequence[Any]], C | None]


class CSVRenderer(BaseRenderer):
    """Makes ``text/csv`` a media type a view answers (content negotiation and the schema); the
    views stream the body themselves with ``csv_response``."""

    media_type = CSV_MEDIA_TYPE
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        rows = data if isinstance(data, list) else []
        return "".join(_lines(rows)).encode()


def wants_csv(request: Request) -> bool:
    """The renderer picked by content negotiation is the CSV one (``Accept: text/csv``)."""
    renderer = getattr(request, "accepted_renderer", None)
    return isinstance(renderer, CSVRenderer)


def csv_schema_response(description: str) -> OpenApiResponse:
    """The CSV answer of an operation, for the schema (a plain string: never a paginated list)."""
    return OpenApiResponse(
        OpenApiTypes.STR, description=f"{description} CSV: a header row of the JSON field names, then one row each."
    )


def _lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _text(rows: Sequence[Sequence[Any]]) -> bytes:
    return "".join(_lines(rows)).encode()


def _read_released[C](read: Callable[[C | None], Chunk[C]], cursor: C | None) -> Chunk[C]:
    """One chunk, and this thread's connection given back right after it (on the pool: to the pool)."""
    try:
        return read(cursor)
    finally:
        release_connections()


def _sync_stream[C](header: Sequence[str], read: Callable[[C | None], Chunk[C]]) -> Iterator[bytes]:
    yield _text([header])
    cursor: C | None = None
    while True:
        rows, cursor = _read_released(read, cursor)
        if rows:
            yield _text(rows)
        if cursor is None:
            return


async def _async_stream[C](header: Sequence[str], read: Callable[[C | None], Chunk[C]]) -> AsyncGenerator[bytes]:
    yield _text([header])
    read_in_thread = in_thread(read)
    cursor: C | None = None
    while True:
        rows, cursor = await read_in_thread(cursor)
        if rows:
            yield _text(rows)
        if cursor is None:
            return


def csv_response[C](
    request: Request | HttpRequest, *, filename: str, header: Sequence[str], read: Callable[[C | None], Chunk[C]]
) -> StreamingHttpResponse:
    """A streamed CSV: ``header``, then the chunks ``read(cursor)`` returns, from ``read(None)`` until a
    chunk names no next cursor. The request's own connection is given back before the first byte."""
    raw = request._request if isinstance(request, Request) else request
    release_connections()
    stream = _async_stream(header, read) if isinstance(raw, ASGIRequest) else _sync_stream(header, read)
    response = StreamingHttpResponse(stream, content_type=f"{CSV_MEDIA_TYPE}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"
    return response

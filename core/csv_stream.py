"""CSV answers of list endpoints: negotiated by ``Accept: text/csv``, streamed in chunks.

Each chunk is read in a database access of its own, and the connection is given back (to the pool)
right after it: a slow client reading a large export never holds a database connection while it
reads. Under ASGI the stream is an async generator that reads each chunk in one thread hop; under
WSGI a plain generator does the same in the request's thread. Every cell goes through
``core.exports.csv_writer`` (formula-like text escaped, plain numbers left as they are).
"""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import cast

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from core.db import release_connections
from core.exports import csv_writer

CSV_MEDIA_TYPE = "text/csv"
CHUNK_ROWS = 1000

# One chunk: the items read, and the cursor of the next chunk (None after the last one).
type Chunk[I, C] = tuple[Sequence[I], C | None]
type Reader[I, C] = Callable[[C | None], Chunk[I, C]]
type Cells = Sequence[Sequence[object]]
type Rows[I] = Callable[[Sequence[I]], Cells]


def _rows_already(items: Sequence[object]) -> Cells:
    """The items of a reader that reads rows of cells (``csv_response`` without ``rows``)."""
    return cast(Cells, items)


class CSVRenderer(BaseRenderer):
    """Makes ``text/csv`` a media type a view answers (content negotiation and the schema); the
    views stream the body themselves with ``csv_response``."""

    media_type = CSV_MEDIA_TYPE
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: object, accepted_media_type: str | None = None, renderer_context: Mapping[str, object] | None = None
    ) -> bytes:
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


def _lines(rows: Iterable[Sequence[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _text(rows: Cells) -> bytes:
    return "".join(_lines(rows)).encode()


def _read_released[I, C](read: Reader[I, C], rows: Rows[I], cursor: C | None) -> tuple[Cells, C | None]:
    """One chunk read, this thread's connection given back (on the pool: to the pool) as soon as the
    items are read, then the items as CSV rows."""
    try:
        items, cursor = read(cursor)
    finally:
        release_connections()
    return rows(items), cursor


def _sync_stream[I, C](header: Sequence[str], read: Reader[I, C], rows: Rows[I]) -> Iterator[bytes]:
    yield _text([header])
    cursor: C | None = None
    while True:
        chunk, cursor = _read_released(read, rows, cursor)
        if chunk:
            yield _text(chunk)
        if cursor is None:
            return


async def _async_stream[I, C](header: Sequence[str], read: Reader[I, C], rows: Rows[I]) -> AsyncGenerator[bytes]:
    yield _text([header])
    read_in_thread = sync_to_async(_read_released)
    cursor: C | None = None
    while True:
        chunk, cursor = await read_in_thread(read, rows, cursor)
        if chunk:
            yield _text(chunk)
        if cursor is None:
            return


def csv_response[I, C](
    request: Request | HttpRequest,
    *,
    filename: str,
    header: Sequence[str],
    read: Reader[I, C],
    rows: Rows[I] = _rows_already,
) -> StreamingHttpResponse:
    """A streamed CSV: ``header``, then ``rows(items)`` of each chunk ``read(cursor)`` returns, from
    ``read(None)`` until a chunk names no next cursor; each chunk in one thread hop, its database
    connection given back before its rows are made. The request's own connection is given back
    before the first byte."""
    raw = request._request if isinstance(request, Request) else request
    release_connections()
    stream = _async_stream(header, read, rows) if isinstance(raw, ASGIRequest) else _sync_stream(header, read, rows)
    response = StreamingHttpResponse(stream, content_type=f"{CSV_MEDIA_TYPE}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"
    return response

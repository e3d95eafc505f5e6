"""Request ids and the ids every log line of a request or a turn carries.

The ids live in context variables: set by the request-id middleware (``requestId``), by the org
resolution (``orgId``, ``userId``) and where a turn starts (``messageId`` with its ``orgId``). They
follow the request's asyncio task, the tasks it starts and asgiref's thread hops (``sync_to_async``
copies the context in and back out). ``ContextFilter`` puts them on every record a handler writes;
``JsonFormatter`` (``LOG_FORMAT=json``) writes one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from daphne.access import AccessLogGenerator

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# log field name → its context variable
_FIELDS: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"leancore_log_{name}", default=None)
    for name in ("requestId", "orgId", "userId", "apiKeyId", "messageId")
}


def request_id_from(header: str | None) -> str:
    """The client's own id when it is safe to echo (at most 64 of ``[A-Za-z0-9._-]``), else a new one."""
    if header and _SAFE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _FIELDS["requestId"].get()


def bind(
    *,
    request_id: str | None = None,
    org_id: object = None,
    user_id: object = None,
    api_key_id: object = None,
    message_id: object = None,
) -> None:
    """Sets the given ids (the others keep their values) for the rest of the current context."""
    for name, value in (
        ("requestId", request_id),
        ("orgId", org_id),
        ("userId", user_id),
        ("apiKeyId", api_key_id),
        ("messageId", message_id),
    ):
        if value is not None:
            _FIELDS[name].set(str(value))


def start(*, request_id: str) -> None:
    """A new request in a task of its own: only its id bound (nothing of an earlier unit of work)."""
    for var in _FIELDS.values():
        var.set(None)
    _FIELDS["requestId"].set(request_id)


@contextmanager
def scope(**ids: object) -> Iterator[None]:
    """The ids of one unit of work (a request, a job): bound inside, every id as before after it."""
    tokens = [(var, var.set(None)) for var in _FIELDS.values()]
    try:
        bind(**ids)  # type: ignore[arg-type]  # bind takes each id by name; a caller may pass any of them
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def fields() -> dict[str, str]:
    """The ids bound in the current context."""
    return {name: value for name, var in _FIELDS.items() if (value := var.get()) is not None}


class ContextFilter(logging.Filter):
    """Adds the bound ids to every record as attributes (``record.requestId`` …)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _FIELDS.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message``, the bound ids, the
    traceback as ``exception``. No other attribute of the record is written (``extra`` values such as
    a query's parameters never reach the line)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


access_logger = logging.getLogger("leancore.access")


def log_access_through_logging() -> None:
    """Daphne writes its access log straight to a stream; under ``LOG_FORMAT=json`` each entry is a
    record of the ``leancore.access`` logger instead (written while the request's ids are still bound:
    Daphne logs the entry from inside the response's last ``send``). The query string is left out
    (it may carry a token)."""

    def write_entry(  # noqa: PLR0917 - Daphne's signature
        self: AccessLogGenerator,
        host: str,
        date: object,
        request: str,
        status: int | None = None,
        length: int | None = None,
        **_: object,
    ) -> None:
        access_logger.info('%s "%s" %s %s', host, request.partition("?")[0], status or "-", length or "-")

    AccessLogGenerator.write_entry = write_entry

"""MCP URLs as they may be shown or logged: no userinfo, no query value. Kept free of Django models
so that the logging configuration can load ``MaskUrlsFilter`` before the apps are ready."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def masked_url(url: str) -> str:
    """``url`` as the API shows it: no userinfo, and every query value ``***`` (a key without a value
    is itself shown as ``***``). The stored URL keeps both; they are often credentials."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{piece.partition('=')[0]}=***" if "=" in piece else "***" for piece in parts.query.split("&") if piece
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_urls(text: str) -> str:
    """Every URL in ``text`` masked (``masked_url``); one that cannot even be parsed is dropped."""

    def mask(match: re.Match[str]) -> str:
        try:
            return masked_url(match.group(0))
        except ValueError:
            return match.group(0).partition("://")[0] + "://***"

    return _URL.sub(mask, text)


class MaskUrlsFilter(logging.Filter):
    """On the loggers of the HTTP clients and the MCP SDK (``LOGGING``): a record's message, and its
    traceback, carry every URL masked, so an MCP URL's userinfo or query (often credentials) reaches
    no log line, at any level."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_urls(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_urls(record.exc_text)
        return True

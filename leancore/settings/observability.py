"""Logs and metrics: the log format and levels, masked URLs, the metrics endpoint's token."""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured

from leancore.settings.env import env_str

# GET /metrics (Prometheus text) answers only with `Authorization: Bearer <METRICS_TOKEN>`; unset, it is a 404.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# LOG_FORMAT=json: one JSON object per line (time, level, logger, message and the ids of the request
# or turn: requestId, orgId, userId, messageId), Daphne's access log included; text: the message alone.
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be text or json.")
logging.captureWarnings(LOG_FORMAT == "json")  # a library's warning is a JSON line too
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "ids": {"()": "core.log_context.ContextFilter"},
        "mask_urls": {"()": "mcps.masking.MaskUrlsFilter"},  # no URL userinfo or query value in a log line
    },
    "formatters": {"json": {"()": "core.log_context.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["ids"],
            **({"formatter": "json"} if LOG_FORMAT == "json" else {}),
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives "django" a console handler of its own under DEBUG; records
        # would print twice (there and at the root). Everything goes to the root handler once.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"level": "ERROR"},
        # The HTTP clients log every request's full URL at INFO (an MCP URL may carry credentials in
        # its userinfo or query): every line they or the MCP SDK write has its URLs masked
        # (mcps.masking), at any LOG_LEVEL; httpcore's per-request DEBUG traces are not written.
        **{name: {"filters": ["mask_urls"]} for name in ("httpx", "httpx2")},
        **{name: {"level": "WARNING", "filters": ["mask_urls"]} for name in ("httpcore", "httpcore2")},
        **{
            name: {"filters": ["mask_urls"]}
            for name in (
                "mcp.client.client",
                "mcp.client.streamable_http",
                "mcp.client.sse",
                "mcp.client.auth.oauth2",
                "mcp.shared.jsonrpc_dispatcher",
                "mcp.shared.dispatcher",
                "client",  # mcp.client.session's
            )
        },
    },
}

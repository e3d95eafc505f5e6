from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from channels.layers import get_channel_layer
from django.db import connection
from django.http.response import HttpResponseBase
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.cache import SharedConnectionPool
from core.errors import ServiceUnavailableError, problem_response
from core.views import PublicAPIView

logger = logging.getLogger(__name__)


def _check_channel_layer() -> None:
    """A PING to each Redis server of the channel layer, from this thread (not through the server's
    event loop: a check in flight while the server shuts down must not keep the process from
    exiting). The in-process layer needs no check."""
    for host in getattr(get_channel_layer(), "hosts", None) or []:
        address = host.get("address") if isinstance(host, dict) else host
        pool = SharedConnectionPool.from_url(str(address), socket_connect_timeout=5, socket_timeout=5)
        redis.Redis(connection_pool=pool).ping()  # a busy layer is not a dead one: 5 s


def _status(check: Callable[[], None]) -> str:
    try:
        check()
    except Exception:
        logger.exception("Health check failed")
        return "error"
    return "ok"


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class HealthView(PublicAPIView):
    @extend_schema(
        responses={
            200: inline_serializer(
                "Health",
                {
                    "status": serializers.CharField(),
                    "database": serializers.CharField(),
                    "channel_layer": serializers.CharField(),
                },
            ),
        },
        summary="Liveness and dependencies",
        description="Unavailable (problem+json, with `database` and `channelLayer`) when one is down.",
    )
    def get(self, request: Request) -> HttpResponseBase:
        database = _status(_check_database)
        channel_layer = _status(_check_channel_layer)
        if database == "ok" and channel_layer == "ok":
            return Response({"status": "ok", "database": database, "channel_layer": channel_layer})
        error = ServiceUnavailableError("A dependency of the service is down.")
        return problem_response(
            error.status,
            error.code,
            error.detail,
            extra={"database": database, "channelLayer": channel_layer},
            headers=error.headers,
        )

"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import contextlib
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leancore.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from daphne import http_protocol  # noqa: E402
from daphne.http_protocol import WebRequest  # noqa: E402
from daphne.ws_protocol import WebSocketProtocol  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.signals import request_started  # noqa: E402
from django.db import close_old_connections, reset_queries  # noqa: E402

from core import tracing  # noqa: E402
from core.log_context import log_access_through_logging  # noqa: E402
from leancore.long_lived import keep_startup_objects_out_of_collections  # noqa: E402
from leancore.routing import websocket_urlpatterns  # noqa: E402
from leancore.worker import start_embedded_worker  # noqa: E402


def _leave_form_bodies_to_django() -> None:
    """Daphne's Twisted request parses every POSTed form or multipart body itself (a second copy
    in memory, unused) and answers one it cannot parse with an empty 400 before Django sees it.
    Django parses bodies; Twisted must not (every 4xx is problem+json)."""
    WebRequest._parsePOSTFormSubmission = property(lambda self: False, lambda self, value: None)


def _start_requests_without_a_thread_hop() -> None:
    """Under ASGI each request's sync code runs in a thread of its own (Django's
    ``ThreadSensitiveContext``), so Django's ``request_started`` receivers (reset the query log,
    close old connections) find nothing to do at a request's start; being sync, they still cost
    every request a hop to that thread before its view runs. Their ``request_finished``
    counterparts stay: they give the request thread's connections back when it ends."""
    request_started.disconnect(reset_queries)
    request_started.disconnect(close_old_connections)


def _let_websockets_close_with_any_code() -> None:
    """Daphne closes a socket through autobahn's ``sendClose``, which accepts only 1000 and
    3000-4999: a consumer's 1009 (frame too large) or 1013 (try again later) became an internal
    error (1011). Send the close frame the consumer asked for."""

    def server_close(self: WebSocketProtocol, code: int | None = None) -> None:
        self.sendCloseFrame(code=1000 if code is None else code, isReply=False)

    WebSocketProtocol.serverClose = server_close


def _write_replies_past_the_deprecation_proxy() -> None:
    """Daphne reaches ``twisted.web.http`` through Twisted's deprecation proxy (``_ModuleProxy``, an
    attribute lookup in Python) for every chunk of every response (``http.Request.write``): an SSE
    turn's every event. Daphne gets the module itself (none of its attributes it reads is deprecated)."""
    with contextlib.suppress(AttributeError):  # a Twisted whose module is not proxied: nothing to do
        http_protocol.http = object.__getattribute__(http_protocol.http, "_module")


_leave_form_bodies_to_django()
_start_requests_without_a_thread_hop()
_write_replies_past_the_deprecation_proxy()
_let_websockets_close_with_any_code()
if settings.LOG_FORMAT == "json":
    log_access_through_logging()
tracing.configure()  # before any database connection: OTEL_EXPORTER_OTLP_ENDPOINT set, or nothing

if settings.EMBEDDED_WORKER:
    start_embedded_worker()

application = ProtocolTypeRouter(
    {
        "http": tracing.traced_asgi(django_asgi_app),  # a span per request (the app itself while off)
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
keep_startup_objects_out_of_collections()  # last: everything the process keeps is built

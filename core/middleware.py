"""Middleware that works in both sync and async mode, so an ASGI request stays on the event loop
(a sync-only middleware would push every request, streams included, through a thread)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security
from django.urls import Resolver404, resolve
from whitenoise.middleware import WhiteNoiseMiddleware

from core import log_context, metrics, tracing
from core.errors import (
    FileTooLargeError,
    RequestTooLargeError,
    as_domain_error,
    error_response,
    generic_code,
    problem_response,
    title_of,
)

# Django's next handler: a response, or (async mode) an awaitable of one; the mode is known only at run time.
type GetResponse = Callable[[HttpRequest], Any]
type ViewFunction = Callable[..., HttpResponseBase]


class _DualMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)  # type: ignore[type-var]  # asgiref types it for functions; an instance works


class RequestIdMiddleware(_DualMiddleware):
    """The outermost layer: every answer carries ``X-Request-Id`` (the client's own when safe, else
    a new one), bound for the request's log lines and problem bodies. Under ASGI the ids stay bound
    in the request's own task until its last byte is sent (Daphne's access entry is written then);
    a sync request gives them back when it returns."""

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        request_id = log_context.request_id_from(request.headers.get(log_context.REQUEST_ID_HEADER))
        if self.is_async:
            return self._acall(request, request_id)
        with log_context.scope(request_id=request_id):
            return self._tagged(self.get_response(request), request_id)

    async def _acall(self, request: HttpRequest, request_id: str) -> HttpResponse:
        log_context.start(request_id=request_id)
        return self._tagged(await self.get_response(request), request_id)

    @staticmethod
    def _tagged(response: HttpResponse, request_id: str) -> HttpResponse:
        response[log_context.REQUEST_ID_HEADER] = request_id
        return response


class MetricsMiddleware(_DualMiddleware):
    """Counts and times every answer (``leancore_http_requests_total``, ``…_duration_seconds``) by
    method, URL pattern (``request.resolver_match.route``, never the path: no id reaches a label)
    and status. A streamed answer is timed until its last byte (when the server closes it)."""

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        return self._recorded(request, self.get_response(request), started)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        return self._recorded(request, await self.get_response(request), started)

    @staticmethod
    def _recorded(request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
        match = request.resolver_match
        unmatched = match is None or match.url_name == "unknown-path"  # the catch-all 404 is no pattern
        route = None if match is None or unmatched else match.route
        if tracing.ENABLED:  # the request's span is named by the same pattern
            tracing.name_request(request.method or "", route)
        record = functools.partial(
            _record_answer,
            request.method or "",
            metrics.UNMATCHED_ROUTE if route is None else metrics.route_label(route),
            response.status_code,
            started,
        )
        if response.streaming:
            response._resource_closers.append(record)  # type: ignore[attr-defined]  # Django's hook, run once the body is sent
        else:
            record()
        return response


def _record_answer(method: str, route: str, status: int, started: float) -> None:
    metrics.record_http_request(method=method, route=route, status=status, seconds=time.perf_counter() - started)


def _measure_chunked_body(request: HttpRequest) -> None:
    """A chunked body (no Content-Length) has been buffered whole by the ASGI handler; give it its
    length, or DRF reads it as empty and the size limit never sees it."""
    stream = getattr(request, "_stream", None)  # the handler's spooled body file
    if stream is not None and stream.seekable():
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        request.META["CONTENT_LENGTH"] = str(size)


def _is_upload(request: HttpRequest) -> bool:
    """A multipart body to an upload endpoint: a view whose ``upload_actions`` name the action (a
    viewset's) or the method (an APIView's) this request is routed to. Resolving the path reads no body."""
    if not (request.content_type or "").startswith("multipart/form-data"):
        return False
    try:
        view = resolve(request.path_info).func
    except Resolver404:
        return False
    method = (request.method or "").lower()
    action = (getattr(view, "actions", None) or {}).get(method, method)
    return action in getattr(getattr(view, "cls", None), "upload_actions", ())


class RequestSizeMiddleware(_DualMiddleware):
    """A body larger than the server accepts is a 413 ``request_too_large`` on every route, before
    anything parses it (JSON, form or multipart alike, chunked or not)."""

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        refused = self._refuse(request)
        if self.is_async:
            return self._acall(request, refused)
        return refused or self.get_response(request)

    async def _acall(self, request: HttpRequest, refused: HttpResponse | None) -> HttpResponse:
        return refused or await self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest) -> HttpResponse | None:
        if not request.META.get("CONTENT_LENGTH") and request.headers.get("Transfer-Encoding"):
            _measure_chunked_body(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            if _is_upload(request):  # the file is what is too large: say so, with the limit for a file
                return error_response(
                    FileTooLargeError(
                        f"The upload is {length} bytes; the limit for a file is {settings.UPLOAD_MAX_BYTES} bytes."
                    )
                )
            return error_response(
                RequestTooLargeError(
                    f"The request body is {length} bytes; the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
                )
            )
        return None


class ProblemMiddleware(_DualMiddleware):
    """The outermost layer: every error the API answers is problem+json.

    Some answers are made before or outside the API's views: Django's own pages for a disallowed
    Host or, under DEBUG, its technical error pages; the docs pages' plain-text 405. Outside the
    admin, such an answer becomes the problem of the same status (its Allow, Retry-After and
    WWW-Authenticate headers kept). Views outside DRF that fail because the database is briefly
    unavailable answer 503 like the API."""

    KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        return self._as_problem(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return self._as_problem(request, await self.get_response(request))

    def _as_problem(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.status_code < 400 or response.streaming or request.path.startswith("/admin/"):
            return response
        if response.get("Content-Type", "").startswith(("application/problem+json", "application/json")):
            return response
        problem = problem_response(
            response.status_code,
            generic_code(response.status_code),
            title_of(response.status_code) + ".",
        )
        for header in self.KEPT_HEADERS:
            if header in response:
                problem[header] = response[header]
        return problem

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        error = as_domain_error(exception)
        if error is None or error.status != 503:
            return None
        return error_response(error)


class StaticFilesMiddleware(WhiteNoiseMiddleware):  # type: ignore[misc]  # WhiteNoise ships no types
    """WhiteNoise, usable in async mode: static files are served as before, everything else
    passes straight through on the event loop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        response: HttpResponse = super().__call__(request)
        return response

    def _static_file(self, request: HttpRequest) -> object:
        """WhiteNoise's ``StaticFile`` for the path, or None."""
        if self.autorefresh:
            return self.find_file(request.path_info)
        return self.files.get(request.path_info)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse
        if request.path_info.startswith(self.static_prefix):
            static_file = await sync_to_async(self._static_file)(request)
            if static_file is not None:
                response = await sync_to_async(self.serve)(static_file, request)
                return response
        response = await self.get_response(request)
        return response


class _OnTheLoop:
    """Django's own middleware (``MiddlewareMixin``) runs each hook of a sync middleware through a
    thread when the request is async: two thread hops per middleware, a dozen per request, streams
    included. These hooks do no I/O, so under ASGI they run on the event loop directly; the rare
    hook that would touch the database (saving a modified session) still goes through a thread."""

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]  # a mixin: Django's MiddlewareMixin is next in line
        if getattr(self, "async_mode", False) and hasattr(self, "process_view"):
            sync_view: Callable[..., HttpResponse | None] = self.process_view  # type: ignore[has-type]  # set just below, read from Django's class first

            async def process_view(
                request: HttpRequest, view: ViewFunction, args: tuple[object, ...], kwargs: dict[str, object]
            ) -> HttpResponse | None:
                if self._view_hook_on_loop(request, view):
                    return sync_view(request, view, args, kwargs)
                return await sync_to_async(sync_view, thread_sensitive=True)(request, view, args, kwargs)

            self.process_view = process_view  # a coroutine: the handler calls it without a thread

    def _view_hook_on_loop(self, request: HttpRequest, view: ViewFunction) -> bool:
        return True

    def _response_hook_on_loop(self, request: HttpRequest) -> bool:
        return True

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse | None = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)  # type: ignore[attr-defined]  # set by MiddlewareMixin
        if hasattr(self, "process_response"):
            if self._response_hook_on_loop(request):
                response = self.process_response(request, response)
            else:
                response = await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
        return response


class SecurityMiddleware(_OnTheLoop, security.SecurityMiddleware):
    pass


class CommonMiddleware(_OnTheLoop, common.CommonMiddleware):
    pass


class XFrameOptionsMiddleware(_OnTheLoop, clickjacking.XFrameOptionsMiddleware):
    pass


class AuthenticationMiddleware(_OnTheLoop, auth.AuthenticationMiddleware):
    """Sets the lazy ``request.user``; nothing is read until a (sync) view asks."""


class SessionMiddleware(_OnTheLoop, sessions.SessionMiddleware):
    def _response_hook_on_loop(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is None or not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(_OnTheLoop, messages.MessageMiddleware):
    def _response_hook_on_loop(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is None or not (storage.used or storage.added_new)  # nothing to store


class CsrfViewMiddleware(_OnTheLoop, csrf.CsrfViewMiddleware):  # type: ignore[misc]  # process_view: set per instance (above)
    def _view_hook_on_loop(self, request: HttpRequest, view: ViewFunction) -> bool:
        # an unsafe method on a protected view reads the form body: a thread
        return getattr(view, "csrf_exempt", False) or request.method in ("GET", "HEAD", "OPTIONS", "TRACE")

"""Typed domain errors and the one exception handler that renders every error as RFC 9457."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import ClassVar

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from core.log_context import current_request_id

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# RFC 9110's name where Python's table still has the older one; 499 (a client that closed the request) is
# no HTTP status of the RFC: it names a turn whose client went away and is never sent.
_RFC9110_TITLES = {413: "Content Too Large", 499: "Client Closed Request"}


def title_of(status: int) -> str:
    """The problem's ``title``: the status's name."""
    try:
        return _RFC9110_TITLES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One stable machine code and the HTTP status it is always answered with."""

    code: str
    status: int
    title: str
    description: str


# The one registry of error codes: every DomainError subclass that names a code registers it here
# (code, status, title), the OpenAPI schema documents each operation's statuses from the errors its
# view declares, and an answer that has only a status (a page Django or a server made) gets the
# code registered as ``generic`` for it.
ERROR_CODES: dict[str, ErrorCode] = {}
_GENERIC: dict[int, str] = {}


def _register(code: str, status: int, description: str, *, generic: bool) -> None:
    known = ERROR_CODES.get(code)
    if known is not None:  # a more specific error subclasses the one that defines its code
        raise TypeError(f"Error code {code!r} is already defined (status {known.status}); subclass its error.")
    ERROR_CODES[code] = ErrorCode(code, status, title_of(status), description)
    if generic and _GENERIC.setdefault(status, code) != code:
        raise TypeError(f"Status {status} already has the generic code {_GENERIC[status]!r}.")


def generic_code(status: int) -> str:
    """The code of an answer that only has a status."""
    return _GENERIC.get(status) or ("server_error" if status >= 500 else "validation_error")


class DomainError(Exception):
    """An error a service raises on purpose; carries its HTTP status and stable code."""

    status: int = 400
    code: str = "invalid_request"
    default_detail: str = "The request could not be processed."
    generic: ClassVar[bool] = False  # the code of a bare answer with this status

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _register(cls.code, cls.status, cls.default_detail, generic=cls.__dict__.get("generic", False))

    def __init__(self, detail: str | None = None, *, extra: dict[str, object] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra or {}
        self.headers: dict[str, str] = {}
        super().__init__(self.detail)


class ValidationFailed(DomainError):
    """A service-level validation error that names a field."""

    status = 400
    code = "validation_error"
    generic = True
    default_detail = "The request is not valid."

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, extra={"errors": {field: [message]}})

    @classmethod
    def of(cls, errors: dict[str, list[str]]) -> ValidationFailed:
        """Several fields at once (``errors`` as the contract shapes it)."""
        first = next((messages[0] for messages in errors.values() if messages), cls.default_detail)
        error = cls.__new__(cls)
        DomainError.__init__(error, first, extra={"errors": errors})
        return error


class NotAuthenticatedError(DomainError):
    status = 401
    code = "not_authenticated"
    generic = True
    default_detail = "Authentication credentials were not provided."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": 'Bearer realm="api"'}


class TokenNotValidError(DomainError):
    status = 401
    code = "token_not_valid"
    default_detail = "The token is invalid or expired."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": 'Bearer realm="api"'}


class NotFoundError(DomainError):
    status = 404
    code = "not_found"
    generic = True
    default_detail = "Not found."


class PermissionDeniedError(DomainError):
    status = 403
    code = "permission_denied"
    generic = True
    default_detail = "You do not have permission to perform this action."


class MethodNotAllowedError(DomainError):
    status = 405
    code = "method_not_allowed"
    generic = True
    default_detail = "This method is not allowed here."


class NotAcceptableError(DomainError):
    status = 406
    code = "not_acceptable"
    generic = True
    default_detail = "None of the media types in the Accept header can be produced."


class InvalidStateError(DomainError):
    status = 409
    code = "invalid_state"
    default_detail = "The object is not in a state that allows this."


class IdempotencyKeyReusedError(DomainError):
    status = 409
    code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used with a different request body."


class InvalidTokenError(DomainError):
    status = 400
    code = "invalid_token"
    default_detail = "The token is invalid, expired or already used."


class RequestTooLargeError(DomainError):
    status = 413
    code = "request_too_large"
    generic = True
    default_detail = "The request body is larger than the server accepts."


class FileTooLargeError(DomainError):
    """An upload over ``UPLOAD_MAX_BYTES`` (raised by the upload check, or by the request size limit
    for a body to an upload endpoint that is over the server's limit too); the detail states the limit."""

    status = 413
    code = "file_too_large"
    default_detail = "The file is larger than the upload limit."


class UnsupportedMediaTypeError(DomainError):
    status = 415
    code = "unsupported_media_type"
    generic = True
    default_detail = "The request body's media type is not supported."


class RateLimitedError(DomainError):
    status = 429
    code = "rate_limited"
    generic = True
    default_detail = "Too many requests."

    def __init__(self, wait: int) -> None:
        self.wait = max(int(wait), 1)
        super().__init__(f"Too many requests. Try again in {self.wait} seconds.")
        self.headers = {"Retry-After": str(self.wait)}


class ServiceUnavailableError(DomainError):
    status = 503
    code = "service_unavailable"
    generic = True
    default_detail = "The service is briefly unavailable. Try again shortly."
    retry_after = 5

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(self.retry_after)}


class ServerError(DomainError):
    status = 500
    code = "server_error"
    generic = True
    default_detail = "An unexpected error occurred."


def problem(
    status: int, code: str, detail: str, *, title: str | None = None, extra: dict[str, object] | None = None
) -> dict[str, object]:
    body: dict[str, object] = {
        "type": f"https://leancore.dev/problems/{code.replace('_', '-')}",
        "title": title or title_of(status),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if extra:
        body.update(extra)
    request_id = current_request_id()
    if request_id is not None:  # every answer's (the request-id middleware binds it)
        body["requestId"] = request_id
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    extra: dict[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JsonResponse:
    """Always JSON, whatever renderer the view has (the schema's YAML, the docs' HTML)."""
    response = JsonResponse(
        problem(status, code, detail, extra=extra), status=status, content_type=PROBLEM_CONTENT_TYPE
    )
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _flatten_detail(detail: object) -> str:
    if isinstance(detail, list) and detail:
        return _flatten_detail(detail[0])
    if isinstance(detail, dict) and detail:
        return _flatten_detail(next(iter(detail.values())))
    return str(detail)


def _messages(value: object, prefix: str = "") -> list[str]:
    """Every message under one field as a flat list of strings; items of list fields and keys of
    nested fields are named in the message (``item 2: …``, ``name: …``)."""
    if isinstance(value, dict):
        out: list[str] = []
        for key, item in value.items():
            label = f"item {key}" if isinstance(key, int) or str(key).isdigit() else camelize_key(str(key))
            out += _messages(item, f"{prefix}{label}: ")
        return out
    if isinstance(value, list | tuple):
        if all(not isinstance(item, dict | list | tuple) for item in value):
            return [f"{prefix}{item}" for item in value]
        out = []
        for index, item in enumerate(value):
            if item in ({}, [], None):  # list serializers report valid items as empty
                continue
            out += _messages(item, f"{prefix}item {index}: ")
        return out
    return [f"{prefix}{value}"]


def camelize_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def field_errors(detail: object) -> dict[str, list[str]]:
    """The contract's ``errors``: camelCase field → flat list of messages."""
    if isinstance(detail, dict):
        return {camelize_key(str(key)): _messages(value) for key, value in detail.items()}
    return {"nonFieldErrors": _messages(detail)}


def as_domain_error(exc: Exception) -> DomainError | None:
    """Every error DRF, Django or a service raises, as one of the registered domain errors."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, Http404 | drf.NotFound | ObjectDoesNotExist):  # a row gone mid-request too
        return NotFoundError()
    if isinstance(exc, (InvalidToken, TokenError)):
        return TokenNotValidError()
    if isinstance(exc, drf.NotAuthenticated):
        return NotAuthenticatedError()
    if isinstance(exc, drf.AuthenticationFailed):
        return TokenNotValidError(_flatten_detail(exc.detail))
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        return PermissionDeniedError(str(getattr(exc, "detail", "")) or None)
    if isinstance(exc, drf.Throttled):
        wait = getattr(exc, "wait", None)
        return RateLimitedError(int(wait or 1))
    if isinstance(exc, drf.ValidationError | DjangoValidationError):
        detail = exc.detail if isinstance(exc, drf.ValidationError) else _django_detail(exc)
        return ValidationFailed.of(field_errors(detail))
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        return RequestTooLargeError()
    if isinstance(exc, RecursionError):  # JSON nested deeper than any real body
        return ValidationFailed.of({"nonFieldErrors": ["The body is nested too deeply."]})
    if isinstance(exc, drf.ParseError):
        return ValidationFailed.of({"nonFieldErrors": [str(exc.detail)]})
    if isinstance(exc, drf.UnsupportedMediaType):
        return UnsupportedMediaTypeError(str(exc.detail))
    if isinstance(exc, drf.MethodNotAllowed):
        return MethodNotAllowedError(str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return NotAcceptableError(str(exc.detail))
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("Database unavailable: %s", exc)
        return ServiceUnavailableError()
    if isinstance(exc, DataError):  # a value the database cannot store that validation let through
        logger.warning("Value refused by the database: %s", exc)
        return ValidationFailed.of({"nonFieldErrors": ["A value is out of the range that can be stored."]})
    return None


def _django_detail(exc: DjangoValidationError) -> dict[str, list[str]] | list[str]:
    return exc.message_dict if hasattr(exc, "error_dict") else exc.messages


def exception_handler(exc: Exception, context: Mapping[str, object]) -> JsonResponse:
    """DRF's EXCEPTION_HANDLER: every error becomes problem+json with a registered code."""
    error = as_domain_error(exc)
    if error is None:
        logger.exception("Unhandled error", exc_info=exc)
        error = ServerError()
    return error_response(error)


def error_response(error: DomainError) -> JsonResponse:
    return problem_response(error.status, error.code, error.detail, extra=error.extra, headers=error.headers)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(NotFoundError())


def handler500(request: HttpRequest) -> JsonResponse:
    return error_response(ServerError())


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    error = as_domain_error(exception) if exception is not None else None
    return error_response(error or ValidationFailed.of({"nonFieldErrors": ["Bad request."]}))


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(PermissionDeniedError("Forbidden."))

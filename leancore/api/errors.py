"""Typed domain errors and the one exception handler that renders every error as RFC 9457."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from djangorestframework_camel_case.util import camelize
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class DomainError(Exception):
    """An error a service raises on purpose; carries its HTTP status and stable code."""

    status: int = 400
    code: str = "invalid_request"
    default_detail: str = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, extra: dict[str, Any] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra or {}
        self.headers: dict[str, str] = {}
        super().__init__(self.detail)


class ValidationFailed(DomainError):
    """A service-level validation error that names a field."""

    status = 400
    code = "validation_error"
    default_detail = "The request is not valid."

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, extra={"errors": {field: [message]}})


class NotFoundError(DomainError):
    status = 404
    code = "not_found"
    default_detail = "Not found."


class PermissionDeniedError(DomainError):
    status = 403
    code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


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


def problem(
    status: int, code: str, detail: str, *, title: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://leancore.dev/problems/{code.replace('_', '-')}",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if extra:
        body.update(extra)
    return body


def problem_response(
    status: int, code: str, detail: str, *, extra: dict[str, Any] | None = None, headers: dict | None = None
) -> Response:
    response = Response(problem(status, code, detail, extra=extra), status=status, content_type=PROBLEM_CONTENT_TYPE)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _flatten_detail(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _flatten_detail(detail[0])
    if isinstance(detail, dict) and detail:
        return _flatten_detail(next(iter(detail.values())))
    return str(detail)


def _validation_errors(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return camelize({key: _listify(value) for key, value in detail.items()})
    return {"nonFieldErrors": _listify(detail)}


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _listify(v) for key, v in value.items()}
    if isinstance(value, list):
        if all(isinstance(v, (str, drf.ErrorDetail)) for v in value):
            return [str(v) for v in value]
        return [_listify(v) for v in value]
    return [str(value)]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error becomes problem+json with a stable code."""
    if isinstance(exc, DomainError):
        return problem_response(exc.status, exc.code, exc.detail, extra=exc.extra, headers=exc.headers)
    if isinstance(exc, (Http404, drf.NotFound)):
        return problem_response(404, "not_found", "Not found.")
    if isinstance(exc, (InvalidToken, TokenError)):
        return problem_response(401, "token_not_valid", "The token is invalid or expired.")
    if isinstance(exc, drf.NotAuthenticated):
        return problem_response(
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, drf.AuthenticationFailed):
        return problem_response(
            401, "token_not_valid", str(exc.detail), headers={"WWW-Authenticate": 'Bearer realm="api"'}
        )
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        detail = str(getattr(exc, "detail", "")) or PermissionDeniedError.default_detail
        return problem_response(403, "permission_denied", detail)
    if isinstance(exc, drf.Throttled):
        wait = int(exc.wait or 1) if exc.wait is not None else 1
        return problem_response(
            429,
            "rate_limited",
            f"Too many requests. Try again in {max(wait, 1)} seconds.",
            headers={"Retry-After": str(max(wait, 1))},
        )
    if isinstance(exc, drf.ValidationError):
        errors = _validation_errors(exc.detail)
        return problem_response(400, "validation_error", _flatten_detail(exc.detail), extra={"errors": errors})
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return problem_response(
            400, "validation_error", _flatten_detail(detail), extra={"errors": _validation_errors(detail)}
        )
    if isinstance(exc, drf.ParseError):
        return problem_response(
            400, "validation_error", str(exc.detail), extra={"errors": {"nonFieldErrors": [str(exc.detail)]}}
        )
    if isinstance(exc, drf.UnsupportedMediaType):
        return problem_response(415, "unsupported_media_type", str(exc.detail))
    if isinstance(exc, drf.MethodNotAllowed):
        return problem_response(405, "method_not_allowed", str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return problem_response(406, "not_acceptable", str(exc.detail))
    if isinstance(exc, drf.APIException):
        return problem_response(exc.status_code, exc.default_code, str(exc.detail))
    logger.exception("Unhandled error", exc_info=exc)
    return problem_response(500, "server_error", "An unexpected error occurred.")


def json_problem(status: int, code: str, detail: str) -> JsonResponse:
    """A problem response outside DRF (Django's 404/500 handlers, middleware)."""
    return JsonResponse(problem(status, code, detail), status=status, content_type=PROBLEM_CONTENT_TYPE)


def handler404(request, exception=None) -> JsonResponse:  # noqa: ANN001
    return json_problem(404, "not_found", "Not found.")


def handler500(request) -> JsonResponse:  # noqa: ANN001
    return json_problem(500, "server_error", "An unexpected error occurred.")


def handler400(request, exception=None) -> JsonResponse:  # noqa: ANN001
    return json_problem(400, "validation_error", "Bad request.")


def handler403(request, exception=None) -> JsonResponse:  # noqa: ANN001
    return json_problem(403, "permission_denied", "Forbidden.")

"""Every error status an operation can answer, derived, not listed by hand: the statuses the shared
machinery can produce for that kind of view (authentication, the org context, bodies, throttles, path
ids) plus the domain errors its view declares in ``errors``; each status lists its codes from the one
registry in ``core.errors``. Also the Problem body and the ``X-Request-Id`` header every answer carries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from rest_framework.views import APIView

from core import errors as e
from orgs.context import InvalidOrgIdError, NotAMemberError, OrgRequiredError

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details (Content-Type: application/problem+json).",
    "required": ["type", "title", "status", "detail", "code", "requestId"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "A stable machine-readable code, e.g. `validation_error`."},
        "requestId": {
            "type": "string",
            "description": "The request's id, as in its `X-Request-Id` response header and the server's log lines.",
        },
        "errors": {
            "type": "object",
            "description": (
                "Validation errors: camelCase field name → a flat list of messages. Messages about one "
                "item of a list field start with its 0-based position (`item 2: …`)."
            ),
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "scope": {
            "type": "string",
            "enum": ["circuit", "org_balance", "org_budget", "specialist_budget", "member_budget", "api_key_budget"],
            "description": (
                "A 402 refusal: what stopped the call, checked in this order. `circuit` adds `reason` and "
                "`openedAt`; `org_balance` adds `required` (the hold) and `available`; each budget "
                "(`org_budget`, `specialist_budget`, `member_budget`: the caller's monthly cap, "
                "`api_key_budget`) adds `limit`, `spent` (this period's spend plus open holds) and `resetAt`."
            ),
        },
    },
    "additionalProperties": True,
}

REQUEST_ID_HEADER = {
    "schema": {"type": "string"},
    "description": (
        "The request's id: the client's own `X-Request-Id` when it sent one of at most 64 characters from "
        "`[A-Za-z0-9._-]`, else a new one. Problem bodies carry it as `requestId`; so do the server's log lines."
    ),
}

WRITE_METHODS = {"POST", "PUT", "PATCH"}


def _declared(view: APIView, method: str) -> list[type[e.DomainError]]:
    declared = getattr(view, "errors", ())
    if isinstance(declared, dict):
        action = getattr(view, "action", None)
        return [*declared.get("*", ()), *declared.get(action or "", ()), *declared.get(method.lower(), ())]
    return list(declared)


def operation_errors(view: APIView, method: str, path: str) -> list[type[e.DomainError]]:
    """Every error class an operation can answer with."""
    # every operation: bad input, a body over the limit, a database briefly unavailable, and a row that
    # is gone by the time the request reads it (deleted concurrently) — or an unknown id in the path
    found: list[type[e.DomainError]] = [
        e.ValidationFailed,
        e.RequestTooLargeError,
        e.ServiceUnavailableError,
        e.NotFoundError,
    ]
    access = getattr(view, "access", None)
    if access != "public":  # an org API key's own throttle (THROTTLE_API_KEY) may answer anywhere
        found += [e.NotAuthenticatedError, e.TokenNotValidError, e.RateLimitedError]
    if access == "user" and not getattr(view, "allows_api_keys", False):
        found.append(e.PermissionDeniedError)  # an org API key: these are for people
    if access == "org":
        found.append(e.PermissionDeniedError)
        found += (
            [e.NotFoundError]
            if getattr(view, "org_path_kwarg", None)
            else [
                OrgRequiredError,
                InvalidOrgIdError,
                NotAMemberError,
            ]
        )
    if method in WRITE_METHODS:
        found.append(e.UnsupportedMediaTypeError)
    if getattr(view, "throttle_classes", None):
        found.append(e.RateLimitedError)
    return found + _declared(view, method)


def error_responses(error_classes: Iterable[type[e.DomainError]]) -> dict[str, dict[str, object]]:
    codes: dict[int, set[str]] = defaultdict(set)
    for error in error_classes:
        codes[error.status].add(error.code)
    responses: dict[str, dict[str, object]] = {}
    for status, names in sorted(codes.items()):
        listed = ", ".join(f"`{name}`" for name in sorted(names))
        title = e.title_of(status)
        headers: dict[str, object] = {}
        if status in (429, 503):
            headers["Retry-After"] = {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        response: dict[str, object] = {
            "description": f"{title}: {listed}.",
            "content": {"application/problem+json": {"schema": PROBLEM_REF}},
        }
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    return responses

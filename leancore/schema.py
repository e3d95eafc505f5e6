"""OpenAPI: the org header on org-scoped operations, and every status an operation can answer.

An operation's error responses are derived, not listed by hand: the statuses the shared machinery
can produce for that kind of view (authentication, the org context, bodies, throttles, path ids)
plus the domain errors its view declares in ``errors``; each status lists its codes from the one
registry in ``core.errors``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from drf_spectacular.openapi import AutoSchema

from core import errors as e
from orgs.api import ORG_HEADER_PARAMETER
from orgs.context import InvalidOrgIdError, NotAMemberError, OrgRequiredError

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details (Content-Type: application/problem+json).",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "A stable machine-readable code, e.g. `validation_error`."},
        "errors": {
            "type": "object",
            "description": (
                "Validation errors: camelCase field name → a flat list of messages. Messages about one "
                "item of a list field start with its 0-based position (`item 2: …`)."
            ),
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "additionalProperties": True,
}

WRITE_METHODS = {"POST", "PUT", "PATCH"}


def _declared(view: Any, method: str) -> list[type[e.DomainError]]:
    declared = getattr(view, "errors", ())
    if isinstance(declared, dict):
        action = getattr(view, "action", None)
        return [*declared.get("*", ()), *declared.get(action or "", ()), *declared.get(method.lower(), ())]
    return list(declared)


def operation_errors(view: Any, method: str, path: str) -> list[type[e.DomainError]]:
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
    if access != "public":
        found += [e.NotAuthenticatedError, e.TokenNotValidError]
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


def _responses(error_classes: Iterable[type[e.DomainError]]) -> dict[str, dict[str, Any]]:
    codes: dict[int, set[str]] = defaultdict(set)
    for error in error_classes:
        codes[error.status].add(error.code)
    responses = {}
    for status, names in sorted(codes.items()):
        listed = ", ".join(f"`{name}`" for name in sorted(names))
        title = e.title_of(status)
        headers = {}
        if status in (429, 503):
            headers["Retry-After"] = {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        response: dict[str, Any] = {
            "description": f"{title}: {listed}.",
            "content": {"application/problem+json": {"schema": PROBLEM_REF}},
        }
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    return responses


class LeanCoreAutoSchema(AutoSchema):
    def get_override_parameters(self) -> list:
        params = list(super().get_override_parameters())
        view = self.view
        if getattr(view, "access", None) == "org" and not getattr(view, "org_path_kwarg", None):
            params.append(ORG_HEADER_PARAMETER)
        return params

    def get_tags(self) -> list[str]:
        return [area_of(self.path)]

    def get_description(self) -> str:  # type: ignore[override]  # drf-spectacular's signature, not DRF's
        """Only what an operation's ``extend_schema`` says for API users: a view's docstring is a
        note for the people who maintain it, not documentation."""
        return ""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for status, response in _responses(operation_errors(self.view, self.method, self.path)).items():
            operation["responses"].setdefault(status, response)
        who = who_may_call(self.view, self.method)
        operation["description"] = "\n\n".join(part for part in (operation.get("description", ""), who) if part)
        return operation


# The API reference's areas, by path: the docs group operations as the contract does.
AREAS = [
    (r"^/users/me/password$", "Authentication"),
    (r"^/auth/", "Authentication"),
    (r"^/register$", "Registration"),
    (r"^/orgs/\{[^}]+\}/mcps|^/mcp/", "MCP integration"),
    (r"^/orgs", "Organizations"),
    (r"^/users", "Users"),
    (r"^/specialists", "Specialists"),
    (r"^/api/chat/", "Chat"),
    (r"^/billing/", "Billing"),
    (r"^/workspaces", "Workspaces"),
    (r"^/(tasks|projects)", "Tasks & projects"),
    (r"^/health$", "Operations"),
]


def area_of(path: str) -> str:
    for pattern, area in AREAS:
        if re.search(pattern, path):
            return area
    return "Operations"


ROLE_WORDS = {"member": "any member", "admin": "an admin or owner", "owner": "an owner"}


def who_may_call(view: Any, method: str) -> str:
    """The operation's access, in words: who may call it and in which organization."""
    access = getattr(view, "access", None)
    if access == "public":
        return "**Access:** no authentication."
    if access == "user":
        return "**Access:** a bearer access token; no organization needed."
    action = getattr(view, "action", None) or method.lower()
    role = getattr(view, "required_roles", {}).get(action, "member")
    if getattr(view, "org_path_kwarg", None):
        where = "the organization in the path (not a member → 404)"
    else:
        where = (
            "the organization named by `X-Org-Id`, or the caller's only organization "
            "(several and no header → 400 `org_required`; not a member → 403 `not_a_member`)"
        )
    return f"**Access:** a bearer access token of {ROLE_WORDS.get(role, role)} of {where}; platform staff in any."


def _path_params(path: str) -> list[str]:
    return re.findall(r"\{([^}]+)\}", path)


def _creates_with_id(result: dict[str, Any], operation: dict[str, Any]) -> bool:
    content = operation.get("responses", {}).get("201", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    if "$ref" in schema:
        schema = result["components"]["schemas"].get(schema["$ref"].rsplit("/", 1)[-1], {})
    return "id" in schema.get("properties", {})


# Links the shape of the paths does not imply: (operation, status, response field, target paths).
NAMED_LINKS = [
    ("/users/invite", "post", "201", "id", ["/users/{id}", "/users/{id}/role"]),
    ("/api/chat/async", "post", "202", "sessionId", ["/api/chat/sessions/{id}"]),
]


def _link_all(paths: dict[str, Any], targets: list[str], parameters: dict[str, str]) -> dict[str, Any]:
    links = {}
    for target in targets:
        for method, operation in paths.get(target, {}).items():
            if method in ("get", "put", "patch", "delete", "post") and "operationId" in operation:
                links[operation["operationId"]] = {"operationId": operation["operationId"], "parameters": parameters}
    return links


def add_links(result: dict[str, Any]) -> None:
    """OpenAPI links from every create (201 with an ``id``) to the operations on the created object,
    so that clients and stateful fuzzers can follow them."""
    paths = result.get("paths", {})
    for source, operations in paths.items():
        create = operations.get("post")
        if not create or not _creates_with_id(result, create):
            continue
        known = set(_path_params(source))
        links = {}
        for target, target_operations in paths.items():
            if not target.startswith(source + "/{"):
                continue
            new = [name for name in _path_params(target) if name not in known]
            if len(new) != 1:
                continue
            parameters = {new[0]: "$response.body#/id"} | {name: f"$request.path.{name}" for name in known}
            for method, operation in target_operations.items():
                if method in ("get", "put", "patch", "delete", "post") and "operationId" in operation:
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": parameters,
                    }
        if links:
            create["responses"]["201"]["links"] = links
    for source, method, status, field, targets in NAMED_LINKS:
        response = paths.get(source, {}).get(method, {}).get("responses", {}).get(status)
        if response is not None:
            response.setdefault("links", {}).update(_link_all(paths, targets, {"id": f"$response.body#/{field}"}))


_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"

# One example body per write operation, in the contract's camelCase shapes.
REQUEST_EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("/auth/login", "post"): {"email": "ada@example.com", "password": "correct horse battery staple"},
    ("/auth/refresh", "post"): {"refreshToken": "eyJhbGciOi…"},
    ("/auth/logout", "post"): {"refreshToken": "eyJhbGciOi…"},
    ("/auth/accept-invite", "post"): {
        "token": "the token from the email",
        "password": "a long new password",
        "name": "Bo",
    },
    ("/auth/password-reset", "post"): {"email": "ada@example.com"},
    ("/auth/password-reset/confirm", "post"): {"token": "the token from the email", "password": "a long new password"},
    ("/users/me/password", "post"): {"currentPassword": "the old one", "newPassword": "a long new password"},
    ("/register", "post"): {
        "organizationName": "Acme",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "password": "correct horse battery staple",
    },
    ("/orgs/{id}", "put"): {"name": "Acme Ltd", "monthlyBudget": "500.000000", "lowBalanceThreshold": "25.000000"},
    ("/orgs/{id}/billing-email", "patch"): {"billingEmail": "billing@example.com"},
    ("/users/invite", "post"): {"email": "bo@example.com", "role": "member", "name": "Bo"},
    ("/users/{id}", "put"): {"name": "Bo Builder"},
    ("/users/{id}/role", "patch"): {"role": "admin"},
    ("/specialists", "post"): {
        "name": "Ada",
        "title": "Bookkeeper",
        "instructions": "Reconcile invoices against payments; be precise.",
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "maxOutputTokens": 1000,
        "toolIds": [_ID],
        "monthlyCreditLimit": "50.000000",
    },
    ("/specialists/{id}", "put"): {
        "name": "Ada",
        "model": "gpt-4o-mini",
        "title": "Lead Bookkeeper",
        "status": "paused",
    },
    ("/specialists/wizard", "post"): {"brief": "A bookkeeper who reconciles invoices every month", "create": False},
    ("/api/chat/stream", "post"): {"specialistId": _ID, "message": "What changed in Q3?"},
    ("/api/chat/async", "post"): {"specialistId": _ID, "message": "Draft the monthly report", "attachmentIds": [_ID]},
    ("/api/chat/upload", "post"): {"file": "(the file's bytes)", "sessionId": _ID},
    ("/orgs/{orgId}/mcps", "post"): {
        "name": "CRM",
        "url": "https://mcp.example.com/mcp",
        "transport": "streamable_http",
        "authType": "bearer",
        "token": "the server's API token",
    },
    ("/orgs/{orgId}/mcps/{id}", "put"): {"name": "CRM (prod)", "enabled": True},
    ("/orgs/{orgId}/mcps/{id}/tools/{toolId}", "patch"): {"enabled": False},
    ("/billing/credits/grant", "post"): {"amount": "100.000000", "reason": "Pilot credits"},
    ("/billing/alerts/acknowledge", "post"): {"alertIds": [_ID]},
    ("/billing/circuit/toggle", "post"): {"state": "open", "reason": "Unexpected spend; investigating"},
    ("/workspaces", "post"): {"name": "Q3 close", "description": "Everything for the quarter's books"},
    ("/workspaces/{id}", "put"): {"name": "Q3 close", "description": "Books for Q3, due 10 October"},
    ("/workspaces/{id}/files", "post"): {"file": "(the file's bytes)"},
    ("/projects", "post"): {"name": "Q3 close", "description": "", "status": "active", "workspaceId": _ID},
    ("/projects/{id}", "put"): {"name": "Q3 close", "status": "archived"},
    ("/tasks", "post"): {
        "title": "Reconcile September invoices",
        "priority": "high",
        "projectId": _ID,
        "assigneeSpecialistId": _ID,
        "dueDate": "2026-10-05",
    },
    ("/tasks/{id}", "put"): {"title": "Reconcile September invoices", "status": "todo", "assigneeUserId": _ID},
}


def add_request_examples(result: dict[str, Any]) -> None:
    for (path, method), body in REQUEST_EXAMPLES.items():
        operation = result.get("paths", {}).get(path, {}).get(method)
        if operation is None or "requestBody" not in operation:
            continue
        for content in operation["requestBody"]["content"].values():
            content.setdefault("examples", {"example": {"summary": "A typical request", "value": body}})


def add_problem_schema(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Post-processing hook: the Problem component, camelCase path parameters (``{orgId}``) and
    links from creates to what they created."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    paths = {}
    for path, operations in result.get("paths", {}).items():
        renamed = path
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and "_" in parameter["name"]:
                    camel = e.camelize_key(parameter["name"])
                    renamed = renamed.replace("{" + parameter["name"] + "}", "{" + camel + "}")
                    parameter["name"] = camel
        paths[renamed] = operations
    result["paths"] = paths
    add_links(result)
    add_request_examples(result)
    return result


def drop_trailing_slash_twins(endpoints: list[tuple]) -> list[tuple]:
    """Pre-processing hook: every path is also served with a trailing slash; document it once."""
    return [endpoint for endpoint in endpoints if not (endpoint[0].endswith("/") and endpoint[0] != "/")]

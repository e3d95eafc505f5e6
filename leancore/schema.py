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

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema

from core import errors as e
from orgs.api import ORG_HEADER_PARAMETER
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


class PrincipalScheme(SimpleJWTScheme):
    """The one way in (``orgs.principal``) takes the same bearer credential: the same security scheme."""

    target_class = "orgs.principal.PrincipalAuthentication"


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
        own = operation.get("description", "") or DESCRIPTIONS.get((schema_path(self.path), self.method.lower()), "")
        who = who_may_call(self.view, self.method)
        operation["description"] = "\n\n".join(part for part in (own, who) if part)
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
        if getattr(view, "allows_api_keys", False):
            return "**Access:** a bearer access token or an org API key; no organization needed."
        return "**Access:** a bearer access token (an org API key → 403 `permission_denied`); no organization needed."
    action = getattr(view, "action", None) or method.lower()
    role = getattr(view, "required_roles", {}).get(action, "member")
    if getattr(view, "org_path_kwarg", None):
        where = "the organization in the path (not a member → 404)"
    else:
        where = (
            "the organization named by `X-Org-Id`, or the caller's only organization "
            "(several and no header → 400 `org_required`; not a member → 403 `not_a_member`)"
        )
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        staff = "platform staff in any"
    elif action in getattr(view, "operator_writes", ()):
        staff = "platform staff in any (with the permission this operation names)"
    else:
        staff = "platform staff only where they are members, by their role (elsewhere 403 `permission_denied`)"
    keys = (
        "an org API key → 403 `permission_denied`"
        if "*" in getattr(view, "people_only", ()) or action in getattr(view, "people_only", ())
        else "or an org API key of that role (its org is its own; `X-Org-Id` may be omitted)"
    )
    return f"**Access:** a bearer access token of {ROLE_WORDS.get(role, role)} of {where} ({keys}); {staff}."


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
    ("/orgs/{orgId}/api-keys", "post"): {
        "name": "CI server",
        "role": "member",
        "monthlyCreditLimit": "50.000000",
        "expiresAt": "2027-01-01T00:00:00Z",
    },
    ("/users/invite", "post"): {"email": "bo@example.com", "role": "member", "name": "Bo"},
    ("/users/{id}", "put"): {"name": "Bo Builder"},
    ("/users/{id}/role", "patch"): {"role": "admin"},
    ("/users/{id}/quota", "patch"): {"monthlyCreditLimit": "50.000000"},
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
    ("/orgs/{orgId}/webhooks", "post"): {"url": "https://hooks.example.com/leancore", "events": ["alert.raised"]},
    ("/orgs/{orgId}/webhooks/{id}", "put"): {"events": ["alert.raised", "turn.failed"], "enabled": True},
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
    result["components"].setdefault("headers", {})["X-Request-Id"] = REQUEST_ID_HEADER
    paths = {}
    for path, operations in result.get("paths", {}).items():
        renamed = path
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {})["X-Request-Id"] = {"$ref": "#/components/headers/X-Request-Id"}
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


def schema_path(path: str) -> str:
    """A route's path as the schema names it: camelCase path parameters (``{org_id}`` → ``{orgId}``)."""
    return re.sub(r"\{([^}]+)\}", lambda match: "{" + e.camelize_key(match.group(1)) + "}", path)


# What each operation does, for API users (Markdown), where its own ``extend_schema`` says nothing;
# keyed like ``REQUEST_EXAMPLES``. The access line is added after it.
DESCRIPTIONS: dict[tuple[str, str], str] = {
    # --- Authentication ---------------------------------------------------------------------
    ("/auth/refresh", "post"): (
        "Returns a new access token and a new refresh token; the refresh token sent is revoked, so a second "
        "use of it answers 401 `token_not_valid`. Store the new refresh token before the next call."
    ),
    ("/auth/verify", "get"): (
        "Answers `{valid: true, userId, expiresAt}` for a valid bearer access token. A missing token is 401 "
        "`not_authenticated`; an expired, forged or otherwise invalid one is 401 `token_not_valid`."
    ),
    ("/auth/logout", "post"): (
        "Revokes the given refresh token (it must be one of the caller's own; otherwise, or when it is invalid "
        "or expired, 400 naming `refreshToken`) and answers 204; `{all: true}` revokes every refresh token of "
        "the caller. Access tokens are not revoked: they stay valid until they expire, so a client should drop "
        "them too."
    ),
    ("/auth/accept-invite", "post"): (
        "Redeems the one-time token from an invitation email. Without a bearer token: `{token, password, name?}` "
        "for an address that has no account yet; it sets the password and answers 200 with the same body as a "
        "login. With the invited account's own access token: `{token}`; it answers `{organization, role}` and "
        "changes nothing of the account. An invitation never sets the password of, renames or re-activates an "
        "existing account (400 `invalid_token`). A used, expired, revoked or unknown token is 400 "
        "`invalid_token`; a weak password is 400 naming `password` and leaves the token usable. Repeated "
        "failures from one client answer 429 with `Retry-After`."
    ),
    ("/auth/password-reset", "post"): (
        "Answers 202 whether or not the email belongs to an account, so it reveals nothing. For an active "
        "account an email is sent with a one-time token (a `Token: …` line and a link with `?token=`) that "
        "expires after 2 hours; asking again revokes the earlier token. Every request counts towards a limit "
        "per email and per client: over it, 429 with `Retry-After`."
    ),
    ("/auth/password-reset/confirm", "post"): (
        "Sets a new password with the token from a reset email and answers 204; the token works once. Every "
        "refresh token of the account stops working, so other sessions must log in again. A used, expired or "
        "unknown token is 400 `invalid_token`; a weak password is 400 naming `password` and leaves the token "
        "usable. Wrong tokens from one client are limited as login failures are: over it, 429 with "
        "`Retry-After`."
    ),
    ("/users/me/password", "post"): (
        "Changes the caller's password and answers 204. A wrong current password is 400 naming "
        "`currentPassword`; a weak new one is 400 naming `newPassword`. Every refresh token of the caller stops "
        "working (access tokens already issued stay valid until they expire). Wrong current passwords are "
        "limited as login failures are, per user and per client: over it, 429 with `Retry-After`, even for "
        "the right one."
    ),
    # --- Registration -----------------------------------------------------------------------
    ("/register", "post"): (
        "Creates the account and a new organization with the caller as its `owner`; the organization's "
        "billing email is the account's email and it starts with the sign-up credits (a setting, 100 by "
        "default). Answers 201 with the login body plus `organization`, so the client is signed in at once. "
        "An email that already has an account, or a weak password, is 400 naming the field; sign-ups per "
        "client are rate-limited (429)."
    ),
    # --- Users ------------------------------------------------------------------------------
    ("/users/me", "get"): (
        "The caller's account (`id`, `email`, `name`, `isStaff`) and every organization where they are an "
        "active member, with their role there, by organization name. Use an `id` from `organizations` as "
        "`X-Org-Id` on org-scoped calls; not paginated."
    ),
    ("/users", "get"): (
        "Members of the organization with their role and `status` (`active`, or `invited` until the invitation "
        "is accepted), newest first, paginated. Filter by `role` and `status`; `search` looks in the name and "
        "the email. Each member has `monthlyCreditLimit` (their monthly credit cap, null = none) and "
        "`spentThisPeriod` (what their turns cost this calendar month, UTC); per-person spend is private to the "
        "person and the admins, so for a `member` caller another member's `spentThisPeriod` is null."
    ),
    ("/users/{id}", "get"): (
        "One member (`{id}` is the user's id), as in the list: with `monthlyCreditLimit` and "
        "`spentThisPeriod` (null for another member when the caller is a `member`). A user who is not a member "
        "of this organization is 404."
    ),
    ("/users/{id}/quota", "patch"): (
        "Sets the member's monthly credit cap `{monthlyCreditLimit}` (a decimal string, at most 6 decimals, "
        "at least 0; null removes it) and answers 200 with the member. Before each model call of a turn the "
        "member started, their spend this period plus their open holds is checked against it, after the "
        "specialist's limit: once it is reached the call is refused with 402 `budget_exhausted`, `scope: "
        '"member_budget"`, `limit`, `spent` and `resetAt` (the next month). Concurrent turns of one member '
        "exceed the cap by at most the last call's overrun. Needs an admin; an admin may not set their own cap "
        "and only an owner sets an owner's (their own included) — otherwise 403 `permission_denied`."
    ),
    ("/users/{id}", "put"): (
        "Sets the member's `name` (`{id}` is the user's id) and answers 200 with the member. The name belongs "
        "to the person's account, so it changes in every organization they are in. Another member's name "
        "needs an admin (403 `permission_denied`); a user who is not a member of this organization is 404."
    ),
    ("/users/{id}", "delete"): (
        "Removes the membership, not the account, and answers 204; for an invited member it revokes the "
        "invitation. Anyone may remove themselves (leave); removing others needs an admin, and removing an "
        "owner needs an owner (403 `permission_denied`). Removing the last owner is 409 `last_owner`; the "
        "removed user's open chat WebSockets of this organization are closed."
    ),
    ("/users/{id}/role", "patch"): (
        "Sets the member's role (`member`, `admin` or `owner`) and answers 200 with the member. Granting or "
        "taking away `owner` needs an owner (403 `permission_denied`); demoting the last owner is 409 "
        "`last_owner`. The member's open WebSockets pick up the new role at once."
    ),
    # --- Organizations ----------------------------------------------------------------------
    ("/orgs", "get"): (
        "The organizations the caller is an active member of, newest first, paginated, each with the caller's "
        "`role`. Platform staff see every organization, with `role: null` where they are not a member."
    ),
    ("/orgs/{id}", "get"): (
        "The organization, the caller's `role` in it, its number of active members (`memberCount`) and its "
        "spending settings: `monthlyBudget` and `lowBalanceThreshold` (null when not set)."
    ),
    ("/orgs/{id}", "put"): (
        "Sets the name and, when given, the spending settings: `monthlyBudget` (calls are refused with 402 "
        "`budget_exhausted` once the calendar month's spend plus open holds reaches it) and "
        "`lowBalanceThreshold` (an alert is raised and emailed when the balance falls below it). An omitted "
        "setting keeps its value; null removes it. "
        "Answers 200 with the organization."
    ),
    ("/orgs/{id}/billing-email", "patch"): (
        "Sets the address that receives the organization's billing alerts (budget thresholds, low balance, "
        "circuit opened) and answers 200 with the organization."
    ),
    ("/orgs/{orgId}/api-keys", "post"): (
        "Creates an API key of the organization (admin) and answers 201 with it and `key`, the secret "
        "`lc_<prefix>_<secret>`, shown only in this answer: only a hash of the secret is stored. `role` is "
        "`member` (default) or `admin`; anything else is 400 naming `role`. Creation is in the organization's "
        "audit trail."
    ),
    ("/orgs/{orgId}/api-keys", "get"): (
        "The organization's API keys (admin), newest first, paginated, revoked ones included, never a secret. "
        "`revoked=true` lists only revoked keys, `revoked=false` only the others."
    ),
    ("/orgs/{orgId}/api-keys/{id}", "get"): "One API key of the organization (admin), never its secret.",
    ("/orgs/{orgId}/api-keys/{id}", "delete"): (
        "Revokes the key at once and answers 204 (revoking a revoked key changes nothing); the record stays, "
        "with `revokedAt`, for the audit trail and the ledger. Revocation is in the organization's audit trail."
    ),
    # --- Specialists ------------------------------------------------------------------------
    ("/specialists", "post"): (
        "Creates a specialist and answers 201 with it. `model` must name an active model rate and "
        "`maxOutputTokens` may not exceed that model's limit; `toolIds` must be enabled MCP tools of this "
        "organization (400 naming the field otherwise); `fallbackModels` (tried in order when `model` fails "
        "before its first output) are at most 3 active models, none repeated and not `model` itself. Defaults: "
        "`temperature` 0.7, `maxOutputTokens` 1024, `status` active, no `monthlyCreditLimit`, no `fallbackModels`."
    ),
    ("/specialists/{id}", "get"): (
        "The specialist, with `usage`: the credits its work cost and the number of its billed replies in this "
        "calendar month (UTC). A deleted specialist, or one of another organization, is 404."
    ),
    ("/specialists/{id}", "put"): (
        "Changes only the fields given; `toolIds`, when given, replaces the whole list. A new `model` or "
        "`maxOutputTokens` is checked against the active model rates like a create, and so are the "
        "`fallbackModels` when they or `model` change (a turn already accepted keeps what it was accepted "
        "with). Setting `status` to "
        "`paused` or `archived` stops new chats with it (409 `specialist_inactive`). Answers 200 with the "
        "specialist."
    ),
    ("/specialists/{id}", "delete"): (
        "Removes the specialist from lists and makes its GET 404, and answers 204. Its chat sessions, messages "
        "and ledger entries stay readable, and usage keeps its id."
    ),
    # --- Chat -------------------------------------------------------------------------------
    ("/api/chat/stream", "post"): (
        "Sends `message` to the specialist and streams the answer as Server-Sent Events; without `sessionId` "
        "a new session starts (`workspaceId` gives it the workspace's files as context, `attachmentIds` "
        "attach uploads). Credits are held for the call's worst case before it starts and settled to the "
        "real usage at the end; refusals (402 `insufficient_credits`, `budget_exhausted`, `circuit_open`, 409 "
        "`specialist_inactive`, 400, 429) arrive as problem+json before any event. A model call that fails "
        "before its first output is retried once, then the specialist's `fallbackModels` are tried (a "
        "`fallback` event each); when every model failed before the stream started: 502 `llm_unavailable`. "
        "If the client disconnects, "
        "the model call is cancelled, what was produced is billed once and the message ends `failed` "
        '(`onDisconnect: "cancel"`, the default); with `onDisconnect: "continue"` the turn runs to its end '
        "without the client and is billed in full. Every event of the turn is kept for `STREAM_REPLAY_SECONDS` "
        "after it ends: resume with `GET /api/chat/messages/{messageId}/events` and `Last-Event-ID`. With an "
        "`Idempotency-Key` (kept 24 h) a repeat of the same body answers 200 JSON `{sessionId, messageId, "
        "status}` instead of a second turn."
    ),
    ("/api/chat/async", "post"): (
        "Takes the same body as the stream, holds the credits for the turn's worst case and answers 202 "
        '`{sessionId, messageId, status: "queued"}`; a worker then runs the turn and the assistant message '
        "moves queued → running → completed or failed. 402 refusals happen here, before anything is queued. "
        "Follow it on the WebSocket `/ws/chat/sessions/{sessionId}/` or by polling `GET "
        "/api/chat/sessions/{id}`; with an `Idempotency-Key` a repeat returns the first answer with the "
        "message's current `status`."
    ),
    ("/api/chat/sessions/{id}", "get"): (
        "The session with all its messages in order, each with its `status`, `error`, tool calls, attachments "
        "and `usage` (tokens and credits). A member reads only sessions they started; another member's "
        "session, or one of another organization, is 404."
    ),
    ("/api/chat/sessions/{id}", "delete"): (
        "Deletes the session and its messages and answers 204; the ledger keeps its usage entries and "
        "uploaded attachments stay stored. Its creator or an admin may delete it; a session the caller cannot "
        "read (a member reads only the sessions they started) is 404. A session with a turn still running is "
        "409 `invalid_state` (delete it once the turn has ended); a turn still queued in it is failed first, "
        "its hold given back."
    ),
    ("/api/chat/upload", "post"): (
        "Stores a multipart `file` and answers 201 `{id, filename, contentType, size, createdAt, "
        "textExtracted}`; pass the `id` in a send's `attachmentIds`. Allowed: plain text, Markdown, CSV, JSON, "
        "PDF, PNG and JPEG (else 415); the text of text files and PDFs is extracted for the specialist, within "
        "`UPLOAD_EXTRACT_SECONDS` and `UPLOAD_EXTRACT_MAX_CHARS`; images, and files whose text cannot be "
        "extracted within those bounds, are stored without text (`textExtracted: false`). Over the "
        "upload size limit → 413 `file_too_large` stating that limit (also when the body is over the server's "
        "request limit), over the organization's storage quota → 413 "
        "`storage_quota_exceeded`; `sessionId` must be a session the caller may read (400 otherwise)."
    ),
    # --- MCP integration --------------------------------------------------------------------
    ("/orgs/{orgId}/mcps", "post"): (
        'Creates a connection in `status: "pending"` and answers 201; it has no tools until a sync. With '
        "`catalogKey` the catalog entry supplies the name, URL, transport and auth type; otherwise `name`, "
        "`url` and `transport` are required. A URL that resolves to a private, loopback, link-local or "
        "metadata address, or does not resolve, is 400 `url_not_allowed`; `authType` `bearer` needs `token`, "
        "`header` also `headerName` (stored encrypted, never returned). Throttled per organization "
        "(`THROTTLE_MCP_WRITE`, creates and updates together, counted once the caller is known as an admin): "
        "429 with `Retry-After`. While the org's lookups of host names already hold its share of the lookup "
        "threads (a name server that does not answer), 503 `service_unavailable`."
    ),
    ("/orgs/{orgId}/mcps/{id}", "put"): (
        "Changes only the fields given and answers 200 with the connection. A new `url` is checked like on "
        "create (400 `url_not_allowed`) and sets the status back to `pending`; a URL on another origin "
        "(scheme, host or port) drops the stored credentials unless this request gives a new `token` "
        "(`hasCredentials` says which). The masked URL this API shows (no userinfo, query values `***`) "
        "sent back keeps the stored URL. `token` and `headerName` "
        "replace the stored credentials, a new `authType` needs its credentials, and `none` drops them. "
        "`catalogKey` cannot be changed. Throttled with create (`THROTTLE_MCP_WRITE`)."
    ),
    ("/orgs/{orgId}/mcps/{id}", "delete"): (
        "Deletes the connection and its stored tools and answers 204; the tools are taken from every "
        "specialist that had them."
    ),
    ("/orgs/{orgId}/mcps/{id}/sync", "post"): (
        "Connects to the server (initialize, then every page of `tools/list`) and makes the stored tools match "
        "it; answers 200 `{added, updated, removed, tools}`. A tool gone from the server is deleted and leaves "
        "every specialist; on success the connection is `connected` with `lastSyncedAt`. An unreachable or "
        "failing server, one whose responses to the sync (every page together) pass `MCP_MAX_RESPONSE_BYTES`, "
        "or one that lists more than 500 tools, a tool name empty or over 200 characters, a description over "
        "16 KiB or an input schema over 64 KiB, is 502 `mcp_unreachable` saying why: the connection becomes "
        "`error` with `lastError`, and the stored tools stay. Throttled per organization (`THROTTLE_MCP_SYNC`), "
        "counted only once the caller is known as an admin and the connection found: 429 with `Retry-After`."
    ),
    ("/orgs/{orgId}/mcps/{id}/tools", "get"): (
        "The tools stored by the last sync, by name, paginated, each with its `inputSchema` and whether the "
        "organization allows it (`enabled`)."
    ),
    ("/orgs/{orgId}/mcps/{id}/tools/{toolId}", "patch"): (
        "Allows or blocks one tool for the whole organization and answers 200 with it. A blocked tool is "
        "offered to no specialist and cannot be added to one, but specialists keep it in `toolIds`, so "
        "enabling it again gives it back; a tool of another connection is 404."
    ),
    # --- Billing ----------------------------------------------------------------------------
    ("/billing/credits/balance", "get"): (
        "The organization's credits: `balance`, `reserved` (held by calls in progress) and `available` "
        "(balance − reserved, what the next call's hold is checked against), with `monthlyBudget`, "
        "`spentThisPeriod` and the period's bounds (the calendar month, UTC)."
    ),
    ("/billing/credits/grant", "post"): (
        "Adds credits to the organization: either `amount` (> 0) or the `packageId` of an active package "
        "(its credits), with an optional `reason`; answers 201 with the `grant` ledger entry, and the balance "
        "rises at once. Only platform staff with the `billing.manage_credits` permission may call it, in any "
        "organization (others, owners and staff without it included: 403 `permission_denied`). With an "
        "`Idempotency-Key` (kept 24 h) a repeat of the same body returns the same entry; the same key with "
        "another body is 409 `idempotency_key_reused`."
    ),
    ("/billing/packages", "get"): (
        "The active credit packages, cheapest first, paginated, each with its credits and its price in cents. "
        "A staff grant can name one with `packageId`."
    ),
    ("/billing/capacity", "get"): (
        "How long the credits last: `burnRatePerDay` (average usage over the last 7 days), `runwayDays` "
        "(available ÷ burn rate; null when nothing was used in those 7 days), and this period's spend against "
        "the budget "
        "(`budgetUsedPercent`, null without a budget). `bySpecialist` and `byModel` split this period's usage, "
        "largest first."
    ),
    ("/billing/alerts/acknowledge", "post"): (
        "Marks alerts as acknowledged (by the caller, now): `alertIds` of this organization (an unknown id is "
        "400 naming `alertIds`) or `all: true`. Answers 200 `{acknowledged}`, the number newly acknowledged; "
        "alerts already acknowledged are left as they were."
    ),
    ("/billing/circuit", "get"): (
        "The spending circuit breaker: `closed` lets spending through, `open` refuses every call that would "
        "spend credits with 402 `circuit_open`. When open, `reason`, `openedAt` and `openedBy` say why and "
        "since when."
    ),
    ("/billing/circuit/toggle", "post"): (
        "Sets the circuit to `state` (`open` or `closed`), or flips it when `state` is omitted, with an "
        "optional `reason`; answers 200 with the circuit. Opening it stops all of the organization's spending "
        "at once and raises a `circuit_opened` alert that is emailed to the billing email. A circuit opened by "
        "an operator (from the admin, or by platform staff through the API) can be closed only by an operator: "
        "an admin who is not platform staff gets 403 `permission_denied`."
    ),
    # --- Workspaces -------------------------------------------------------------------------
    ("/workspaces", "post"): (
        "Creates a workspace and answers 201 with it; the caller, as its creator, may change and delete it "
        "(as may admins). Chats started with its `workspaceId` get its files as context and can save artifacts "
        "in it."
    ),
    ("/workspaces/{id}", "get"): "The workspace with its number of files (`fileCount`) and chats (`threadCount`).",
    ("/workspaces/{id}", "put"): (
        "Changes the `name` and `description` given (omitted ones keep their values) and answers 200. Only the "
        "workspace's creator or an admin may (403 `permission_denied` otherwise)."
    ),
    ("/workspaces/{id}", "delete"): (
        "Deletes the workspace, its files (removed from storage) and its artifacts, and answers 204. Its chat "
        "sessions stay, outside any workspace, and its projects lose their `workspaceId`. Only its creator or "
        "an admin may (403 otherwise)."
    ),
    ("/workspaces/{id}/threads", "get"): (
        "The workspace's chat sessions, newest first, paginated: a member sees the ones they started, admins "
        "all of them."
    ),
    ("/workspaces/{id}/artifacts", "get"): (
        "The documents specialists saved in this workspace during its chats (with the `save_artifact` tool), "
        "newest first, paginated, each with its content and the session and specialist that made it."
    ),
    ("/workspaces/{id}/files", "get"): (
        "The workspace's files (name, type, size, uploader), newest first, paginated. The content itself is "
        "not served here."
    ),
    ("/workspaces/{id}/files", "post"): (
        "Stores a multipart `file` in the workspace and answers 201; its text is then given as context to the "
        "specialist in every chat of this workspace (`textExtracted` says whether it has any). The same "
        "types, limits and extraction bounds as a chat upload: 415 for "
        "another type, 413 `file_too_large` or `storage_quota_exceeded`, 429 when uploading too fast."
    ),
    ("/workspaces/{id}/files/{fileId}", "delete"): (
        "Deletes the file and its stored content and answers 204; chats no longer get its text. Its uploader, "
        "the workspace's creator or an admin may (403 otherwise)."
    ),
    # --- Tasks & projects -------------------------------------------------------------------
    ("/projects", "get"): (
        "The organization's projects, newest first, paginated, each with its number of tasks (`taskCount`). "
        "Filter by `status` (`active`, `archived`)."
    ),
    ("/projects", "post"): (
        "Creates a project (`status` active unless given) and answers 201. `workspaceId` must name a workspace "
        "of this organization (400 otherwise); tasks of the project then run in that workspace."
    ),
    ("/projects/{id}", "get"): "The project with its number of tasks (`taskCount`).",
    ("/projects/{id}", "put"): (
        "Changes only the fields given (`workspaceId: null` detaches the workspace) and answers 200 with the project."
    ),
    ("/projects/{id}", "delete"): (
        "Deletes the project together with all of its tasks and answers 204. Only its creator or an admin may "
        "(403 otherwise)."
    ),
    ("/tasks", "post"): (
        "Creates a task (`status` todo and `priority` medium unless given) and answers 201. It has at most one "
        "assignee: `assigneeUserId` (an active member) or `assigneeSpecialistId`; both is 400. Ids of the "
        "project, member or specialist must be of this organization (400 naming the field)."
    ),
    ("/tasks/{id}", "get"): (
        "The task; after a run, `result` holds the specialist's answer (or `error` why it failed) and "
        "`sessionId` the chat session of the last run."
    ),
    ("/tasks/{id}", "put"): (
        "Changes only the fields given and answers 200 with the task. Giving the task to a person removes the "
        "specialist assignee and the other way round; both in one request is 400."
    ),
    ("/tasks/{id}", "delete"): "Deletes the task and answers 204. Only its creator or an admin may (403 otherwise).",
}

"""OpenAPI: the org header on org-scoped operations and problem+json error responses everywhere."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema


class LeanCoreAutoSchema(AutoSchema):
    def get_override_parameters(self) -> list:
        from leancore.api.views import ORG_HEADER_PARAMETER

        params = list(super().get_override_parameters())
        view = self.view
        if getattr(view, "access", None) == "org" and not getattr(view, "org_path_kwarg", None):
            params.append(ORG_HEADER_PARAMETER)
        return params

    def get_tags(self) -> list[str]:
        path = self.path.strip("/").split("/")
        if path[0] == "api" and len(path) > 1:
            return [path[1]]
        return [path[0] or "root"]


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
            "description": "Validation errors by camelCase field name.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "additionalProperties": True,
}

ERROR_DESCRIPTIONS = {
    "400": "Invalid request (`validation_error`, `org_required`, `invalid_org_id`, …).",
    "401": "Not authenticated (`not_authenticated`, `token_not_valid`, `invalid_credentials`).",
    "402": "Refused for money: `insufficient_credits`, `budget_exhausted` or `circuit_open`, with `scope`.",
    "403": "Not allowed (`permission_denied`, `not_a_member`).",
    "404": "Not found, or another organization's object (`not_found`).",
    "409": "Conflicting state.",
    "429": "Throttled (`rate_limited`); see Retry-After.",
}


def add_problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Post-processing hook: every operation documents its problem+json errors."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            secured = bool(operation.get("security")) and {} not in operation.get("security", [])
            codes = ["400", "404", "429"]
            if secured:
                codes += ["401", "403"]
            if path.startswith(("/billing", "/api/chat")) or "wizard" in path or "/run" in path:
                codes.append("402")
            if method in ("put", "patch", "post", "delete"):
                codes.append("409")
            for code in codes:
                operation["responses"].setdefault(
                    code,
                    {
                        "description": ERROR_DESCRIPTIONS[code],
                        "content": {"application/problem+json": {"schema": ref}},
                    },
                )
    return result


def drop_trailing_slash_twins(endpoints: list[tuple]) -> list[tuple]:
    """Pre-processing hook: every path is also served with a trailing slash; document it once."""
    return [endpoint for endpoint in endpoints if not (endpoint[0].endswith("/") and endpoint[0] != "/")]

"""The schema of one operation: the org header on org-scoped operations, its area (tag), every
error status it can answer, and its description with who may call it."""

from __future__ import annotations

import re

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ComponentRegistry
from drf_spectacular.utils import OpenApiParameter, _SerializerType

from leancore.schema.access import who_may_call
from leancore.schema.descriptions import description_of
from leancore.schema.document import Document
from leancore.schema.error_responses import error_responses, operation_errors
from orgs.api import ORG_HEADER_PARAMETER
from orgs.principal import PrincipalAuthentication


class PrincipalScheme(SimpleJWTScheme):  # type: ignore[no-untyped-call]  # its registry hook is unannotated
    """The one way in (``orgs.principal``) takes the same bearer credential: the same security scheme."""

    target_class = "orgs.principal.PrincipalAuthentication"


class LeanCoreAutoSchema(AutoSchema):
    def get_auth(self) -> list[dict[str, list[str]]]:
        """Org views read their caller with ``MemberAuthentication``, ``PrincipalAuthentication``'s one
        read for the org in hand: the same bearer credential, so the same security scheme."""
        view = self.view
        authenticators = view.get_authenticators()
        documented = [
            PrincipalAuthentication() if isinstance(a, PrincipalAuthentication) else a for a in authenticators
        ]
        view.get_authenticators = lambda: documented  # type: ignore[method-assign]  # only for this document
        try:
            return super().get_auth()
        finally:
            del view.get_authenticators

    def get_override_parameters(self) -> list[OpenApiParameter | _SerializerType]:
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

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: ComponentRegistry
    ) -> Document | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for status, response in error_responses(operation_errors(self.view, self.method, self.path)).items():
            operation["responses"].setdefault(status, response)
        own = operation.get("description", "") or description_of(self.view, self.path, self.method)
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

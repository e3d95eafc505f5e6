"""Org-aware base views: the organization is resolved once per request (``X-Org-Id``, the path's
org, or the only membership) and every queryset is filtered by it in ``get_queryset``; subclasses
set ``queryset``, narrow it only in ``scope_queryset`` and never filter by org themselves.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, cast

from django.db.models import Model, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import viewsets
from rest_framework.authentication import BaseAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from core import log_context
from core.errors import NotFoundError
from core.views import Access
from orgs.context import OrgContext, require_member, require_role
from orgs.models import Organization, OrgScopedQuerySet
from orgs.principal import MemberAuthentication, Principal, request_principal

ORG_HEADER_PARAMETER = OpenApiParameter(
    name="X-Org-Id",
    type=OpenApiTypes.UUID,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "The organization to act in. Optional when the caller belongs to exactly one organization; "
        "otherwise 400 `org_required`. Not a member → 403 `not_a_member`."
    ),
)


def bind_log_context(principal: Principal) -> None:
    """The caller's ids on the request's log lines: the org, and the user or the API key."""
    if principal.api_key is not None:
        log_context.bind(org_id=principal.org.pk, api_key_id=principal.api_key.pk)
    else:
        log_context.bind(org_id=principal.org.pk, user_id=principal.user.pk if principal.user else None)


def _path_org_id(value: object) -> uuid.UUID:
    """The org id of the path (the routes' ``uuid`` converter parses it): anything else is 404."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFoundError from exc


class OrgContextMixin(APIView):
    """Resolves ``request.org_context`` from the header right after authentication.

    ``required_roles`` maps a viewset action (or a lower-case HTTP method for plain
    views) to the least role it needs. A write (any method but GET, HEAD, OPTIONS) needs a
    membership: platform staff outside their orgs only read there, except the actions named in
    ``operator_writes`` (which check their own permission).
    """

    access: ClassVar[Access] = "org"
    permission_classes = [IsAuthenticated]
    required_roles: ClassVar[dict[str, str]] = {}
    operator_writes: ClassVar[frozenset[str]] = frozenset()
    # Set on views whose path carries the org (``/orgs/{orgId}/…``): non-members get 404.
    org_path_kwarg: ClassVar[str | None] = None
    # Actions for people only (managing keys, memberships, roles, quotas, granting credits): an org
    # API key gets 403 ``permission_denied`` whatever its role. ``"*"``: every action of the view.
    people_only: ClassVar[frozenset[str]] = frozenset()

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        path_org_id = _path_org_id(kwargs[self.org_path_kwarg]) if self.org_path_kwarg else None
        principal = request_principal(request, path_org_id=path_org_id)
        context = principal.context
        # Kept on the view: DRF hands some handlers (OPTIONS) a clone of the request.
        self._principal = request.principal = principal  # type: ignore[attr-defined]  # the request's own mark
        self._org_context = request.org_context = context  # type: ignore[attr-defined]  # read by body-id fields
        bind_log_context(principal)
        key = getattr(self, "action", None) or (request.method or "").lower()
        if key in self.people_only or "*" in self.people_only:
            context.refuse_for_keys("manage keys, memberships, roles, quotas or credits")
        if request.method not in SAFE_METHODS and key not in self.operator_writes:
            require_member(context)
        role = self.required_roles.get(key)
        if role:
            require_role(context, role)

    def get_authenticators(self) -> list[BaseAuthentication]:
        """The default authentication reads the caller's user and membership in one query
        (``MemberAuthentication``); a view that names its own keeps it."""
        if self.authentication_classes is not APIView.authentication_classes:
            return super().get_authenticators()
        path_org_id = self.kwargs.get(self.org_path_kwarg) if self.org_path_kwarg else None
        return [MemberAuthentication(path_org_id=path_org_id)]

    @property
    def principal(self) -> Principal:
        """The caller, placed in the request's org: what services and the ledger are given."""
        return self._principal

    @property
    def org_context(self) -> OrgContext:
        return self._org_context

    @property
    def org(self) -> Organization:
        return self.org_context.org


class OrgScopedQuerysetMixin[M: Model](OrgContextMixin, GenericAPIView[M]):
    """Every queryset is filtered by the request's org (``for_org`` of the model's queryset); this
    cannot be skipped by a subclass that only sets ``queryset`` and narrows it in
    ``scope_queryset``, the one hook a view has (a test fails a view that overrides
    ``get_queryset``)."""

    def scope_queryset(self, queryset: QuerySet[M]) -> QuerySet[M]:
        """Hook for narrowing further (e.g. a member's own sessions)."""
        return queryset

    def get_queryset(self) -> QuerySet[M]:
        queryset = cast(OrgScopedQuerySet[M], super().get_queryset())  # every org-owned model's queryset
        return self.scope_queryset(queryset.for_org(self.org))

    def of_parent[C: Model](self, rows: QuerySet[C], *, parent: type[Model], field: str) -> QuerySet[C]:
        """``rows`` (already this org's) of the parent the path names (its ``pk``: a workspace's
        threads, a connection's tools). The parent is not read for a page that has rows, which
        name it in this org; an empty page reads it, and is 404 when it is not this org's
        (``require_page_parent``, from the paginator)."""
        self._page_parent = (parent, self.kwargs["pk"])
        return rows.filter(**{f"{field}_id": self.kwargs["pk"]})

    def require_page_parent(self) -> None:
        """404 unless the parent of a page with no rows (``of_parent``) is one of this org's."""
        found: tuple[type[Model], object] | None = getattr(self, "_page_parent", None)
        if found is None:
            return
        parent, pk = found
        parents = cast(OrgScopedQuerySet[Model], parent._default_manager.all())  # an org-owned model's
        if not parents.for_org(self.org).filter(pk=pk).exists():
            raise NotFoundError


class OrgAPIView(OrgContextMixin):
    pass


class OrgViewSet[M: Model](OrgScopedQuerysetMixin[M], viewsets.GenericViewSet[M]):
    pass

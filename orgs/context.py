"""Resolving the organization of a request, once, and checking roles against it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypedDict

from accounts.models import User
from core import db
from core.errors import DomainError, PermissionDeniedError
from orgs.models import ROLE_RANK, ApiKey, Membership, Organization, Role


class OrgRequiredError(DomainError):
    status = 400
    code = "org_required"
    default_detail = "You belong to several organizations: say which one with the X-Org-Id header."


class InvalidOrgIdError(DomainError):
    status = 400
    code = "invalid_org_id"
    default_detail = "X-Org-Id must be an organization id (a UUID)."


class NotAMemberError(DomainError):
    status = 403
    code = "not_a_member"
    default_detail = "You are not a member of this organization."


class Creator(TypedDict):
    """Who created a row: a member (``created_by``) or an org API key (``created_by_api_key``)."""

    created_by: User | None
    created_by_api_key: ApiKey | None


@dataclass(frozen=True, slots=True)
class OrgContext:
    """Who acts in which org: a member (``membership``), an org API key (``api_key``: the org is
    the key's, its role the key's), or platform staff outside their orgs (neither)."""

    org: Organization
    membership: Membership | None  # None for platform staff acting outside their orgs, and for a key
    is_staff: bool
    in_admin: bool = False  # an operator in the admin (their tool for changes), not the API
    api_key: ApiKey | None = None  # the org API key the caller used (then ``membership`` is None)

    @property
    def role(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.role
        return self.membership.role if self.membership else None

    @property
    def is_outsider(self) -> bool:
        """Platform staff through the API in an organization they are not a member of: they only
        read there (``require_member``)."""
        return self.membership is None and self.api_key is None and not self.in_admin

    def has_role(self, role: str) -> bool:
        """A member's or key's role decides, platform staff's too; staff outside their orgs pass
        (they read what an admin reads, and through the API they write nothing there)."""
        own = self.role
        if own is not None:
            return ROLE_RANK[Role(own)] >= ROLE_RANK[Role(role)]
        return self.is_staff

    @property
    def user(self) -> User | None:
        return self.membership.user if self.membership else None

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.membership.user_id if self.membership else None

    @property
    def api_key_id(self) -> uuid.UUID | None:
        return self.api_key.pk if self.api_key is not None else None

    def created(self, *, created_by_id: uuid.UUID | None, created_by_api_key_id: uuid.UUID | None) -> bool:
        """Whether the caller created a row that records its creator as a user or a key."""
        if self.api_key is not None:
            return created_by_api_key_id == self.api_key.pk
        return created_by_id is not None and created_by_id == self.user_id

    def creator(self) -> Creator:
        """The creator fields of a row the caller creates: their user, or their key."""
        return {"created_by": self.user, "created_by_api_key": self.api_key}

    @property
    def allowed_specialist_ids(self) -> frozenset[uuid.UUID] | None:
        """The specialists a key is limited to (None: every specialist of the org)."""
        ids = self.api_key.specialist_ids if self.api_key is not None else None
        return frozenset(uuid.UUID(str(value)) for value in ids) if ids else None

    def refuse_for_keys(self, what: str) -> None:
        """403 for an API key: ``what`` is for people only (keys, memberships, quotas, credits)."""
        if self.api_key is not None:
            raise PermissionDeniedError(f"An API key cannot {what}.")


def require_role(context: OrgContext, role: str) -> None:
    if not context.has_role(role):
        raise PermissionDeniedError(f"This action needs the {role} role in the organization.")


def require_member(context: OrgContext) -> None:
    """Every write through the API (and every turn) needs a membership: platform staff outside their
    orgs only read there (the admin is their tool for changes)."""
    if context.is_outsider:
        raise PermissionDeniedError("Platform staff may only read in an organization they are not a member of.")


def _active_membership(user: User, org_id: uuid.UUID) -> Membership | None:
    return (
        Membership.objects.select_related("organization", "user")
        .filter(user=user, organization_id=org_id, status=Membership.Status.ACTIVE)
        .first()
    )


def context_for(user: User, org_id: uuid.UUID) -> OrgContext | None:
    """The caller's context in one org: an active membership, or platform staff in any existing org."""
    membership = _active_membership(user, org_id)
    if membership is not None:
        return OrgContext(org=membership.organization, membership=membership, is_staff=user.is_staff)
    if user.is_staff:
        org = Organization.objects.filter(pk=org_id).first()
        if org is not None:
            return OrgContext(org=org, membership=None, is_staff=True)
    return None


def resolve_org(user: User, raw: str | None) -> OrgContext:
    """The org named by an ``X-Org-Id`` value, or the caller's only org."""
    if raw:
        try:
            org_id = uuid.UUID(raw.strip())
        except ValueError as exc:
            raise InvalidOrgIdError from exc
        context = context_for(user, org_id)
        if context is None:
            raise NotAMemberError
        return context
    memberships = list(
        Membership.objects.across_orgs("the caller's own memberships: their only org")
        .select_related("organization", "user")
        .filter(user=user, status=Membership.Status.ACTIVE)[:2]
    )
    if len(memberships) != 1:
        raise OrgRequiredError
    membership = memberships[0]
    return OrgContext(org=membership.organization, membership=membership, is_staff=user.is_staff)


def member_context(user_id: uuid.UUID, org_header: str | None) -> OrgContext | None:
    """The caller's user and active membership in one hand-written read, for a hot path that knows
    the user's id from its token: the context when the (active) user is an active member of the org
    named by the raw ``X-Org-Id`` value ``org_header`` (parsed here), or of their only org. None
    means the caller must be placed the general way (their user loaded, then ``resolve_org``),
    which tells apart a missing or inactive user, staff, non-members, several orgs and a malformed
    header."""
    try:
        org_id = uuid.UUID(org_header.strip()) if org_header else None
    except ValueError:
        return None
    found = db.rows(
        f"SELECT {db.columns(Membership, 'm')}, {db.columns(User, 'u')}, {db.columns(Organization, 'o')} "  # noqa: S608
        f"FROM {Membership._meta.db_table} m JOIN {User._meta.db_table} u ON u.id = m.user_id "
        f"JOIN {Organization._meta.db_table} o ON o.id = m.organization_id "
        f"WHERE m.user_id = %s AND u.is_active = %s AND m.status = %s"
        + (" AND m.organization_id = %s" if org_id else "")
        + " LIMIT 2",
        [user_id, True, Membership.Status.ACTIVE, *([org_id] if org_id else [])],
        scope=db.AcrossOrgs("the caller's own membership, by their token's user"),
    )
    if len(found) != 1:
        return None
    row = found[0]
    membership = row.take(Membership)
    membership.user = row.take(User)
    membership.organization = row.take(Organization)
    return OrgContext(org=membership.organization, membership=membership, is_staff=membership.user.is_staff)

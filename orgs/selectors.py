from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from accounts.models import User
from orgs.models import ApiKey, Membership, Organization, Role

MEMBER_ROLE = "member_role"  # the caller's role in each org a list shows (null: staff, not a member)


def organizations_for(*, user: User) -> QuerySet[Organization]:
    """The caller's orgs (staff: every org), newest first, each with the caller's role there
    (``MEMBER_ROLE``: their active membership's, null where they have none)."""
    queryset = Organization.objects.all()
    if not user.is_staff:
        queryset = queryset.filter(memberships__user=user, memberships__status=Membership.Status.ACTIVE)
    role = Membership.objects.filter(organization=OuterRef("pk"), user=user, status=Membership.Status.ACTIVE)
    return queryset.annotate(**{MEMBER_ROLE: Subquery(role.order_by().values("role")[:1])}).order_by("-created_at")


def organization_count_for(*, user: User) -> int | None:
    """How many orgs ``organizations_for`` lists, counted from the caller's active memberships alone
    (each names one org: no join to every org); ``None`` for staff (every org, counted as listed)."""
    if user.is_staff:
        return None
    return (
        Membership.objects.across_orgs("a user's own memberships")
        .filter(user=user, status=Membership.Status.ACTIVE)
        .count()
    )


def organization_detail(*, org: Organization) -> Organization:
    return Organization.objects.annotate(
        member_count=Count("memberships", filter=Q(memberships__status=Membership.Status.ACTIVE))
    ).get(pk=org.pk)


def members(*, org: Organization) -> QuerySet[Membership]:
    return Membership.objects.for_org(org).select_related("user").order_by("-created_at")


def member_credit_limit(*, org_id: uuid.UUID, user_id: uuid.UUID) -> Decimal | None:
    """The monthly credit cap of a user's membership of an org (None: no cap, or no membership)."""
    found = Membership.objects.for_org(org_id).filter(user_id=user_id).values_list("monthly_credit_limit", flat=True)
    return found.first()


def api_key_usable(*, org_id: uuid.UUID, api_key_id: uuid.UUID) -> bool:
    """Whether an org's API key still works now: not revoked, not expired."""
    key = ApiKey.objects.for_org(org_id).filter(pk=api_key_id).only("revoked_at", "expires_at").first()
    return key is not None and key.is_usable()


def api_key_credit_limit(*, org_id: uuid.UUID, api_key_id: uuid.UUID) -> Decimal | None:
    """The monthly credit cap of an org's API key as it is now (None: no cap, or no such key)."""
    found = ApiKey.objects.for_org(org_id).filter(pk=api_key_id).values_list("monthly_credit_limit", flat=True)
    return found.first()


# What members' and API keys' turns cost this period is the ledger's (billing, a floor above):
# billing provides the readers when it loads (``billing.apps``), and the members' and keys' pages
# show it.
SpendReader = Callable[..., dict[uuid.UUID, Decimal]]
_spend_readers: dict[str, SpendReader] = {}


def provide_spend_readers(*, members: SpendReader, keys: SpendReader) -> None:
    """Billing's readers of spend: ``members(org_id=..., user_ids=[...])`` → {user id: credits},
    ``keys(org_id=..., key_ids=[...])`` → {key id: credits}."""
    _spend_readers.update(members=members, keys=keys)


def _spend_reader(name: str) -> SpendReader:
    if name not in _spend_readers:
        raise ImproperlyConfigured("No reader of spend: is the billing app installed?")
    return _spend_readers[name]


def spent_this_period(*, org_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    """What each member's turns cost this period, in one query for all of them."""
    if not user_ids:
        return {}
    return _spend_reader("members")(org_id=org_id, user_ids=user_ids)


def key_spent_this_period(*, org_id: uuid.UUID, key_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    """What the turns started with each API key cost this period, in one query for all of them."""
    if not key_ids:
        return {}
    return _spend_reader("keys")(org_id=org_id, key_ids=key_ids)


def is_last_active_owner(membership: Membership) -> bool:
    """Whether this membership is what keeps its organization owned (the one active owner)."""
    if membership.role != Role.OWNER or membership.status != Membership.Status.ACTIVE:
        return False
    return not (
        Membership.objects.filter(
            organization_id=membership.organization_id, role=Role.OWNER, status=Membership.Status.ACTIVE
        )
        .exclude(pk=membership.pk)
        .exists()
    )


def owners_a_deletion_would_remove(memberships: QuerySet[Membership]) -> list[uuid.UUID]:
    """Of the memberships about to be deleted together, the active owners of every organization that
    would be left with none (they are kept)."""
    doomed = list(
        memberships.filter(role=Role.OWNER, status=Membership.Status.ACTIVE).values_list("pk", "organization_id")
    )
    keep = []
    for org_id in {org_id for _, org_id in doomed}:
        remaining = (
            Membership.objects.for_org(org_id)
            .filter(role=Role.OWNER, status=Membership.Status.ACTIVE)
            .exclude(pk__in=[pk for pk, _ in doomed])
            .exists()
        )
        if not remaining:
            keep += [pk for pk, owner_org in doomed if owner_org == org_id]
    return keep


def active_memberships(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.across_orgs("a user's own organizations")
        .select_related("organization")
        .filter(user=user, status=Membership.Status.ACTIVE)
        .order_by("organization__name")
    )

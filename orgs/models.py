from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Self, cast

from django.conf import settings
from django.db import models
from django.db.models.query import RawQuerySet
from django.db.models.sql import Query
from django.utils import timezone

from core.lookups import AnyOf

if TYPE_CHECKING:
    from django.db.backends.utils import _ExecuteQuery  # the stubs' name for a statement's text


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    billing_email = models.EmailField(blank=True)
    monthly_budget = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    low_balance_threshold = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # the caller's orgs, newest first: a page walks this index, not every org sorted
        indexes = [models.Index(fields=["-created_at"], name="orgs_organization_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(monthly_budget__isnull=True) | models.Q(monthly_budget__gte=0),
                name="org_monthly_budget_non_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(low_balance_threshold__isnull=True) | models.Q(low_balance_threshold__gte=0),
                name="org_low_balance_threshold_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class UnscopedQueryError(RuntimeError):
    """A read or write of org-owned rows through ``objects`` that names no organization: refused
    (fail closed) rather than run across every organization."""


# The lookups on the org field that scope a query to an organization (or to a few named ones).
_ORG_LOOKUPS = ("", "_id", "__id", "__pk", "__exact", "_id__exact", "__in", "_id__in", "__pk__in", "__id__in")


class OrgScopedQuerySet[M: models.Model](models.QuerySet[M]):
    """Querysets of org-owned objects. Through a model's ``objects`` they fail closed: a query runs
    only once it names its organization (``for_org(org)``, or a filter on the model's org field) or
    says why it spans organizations (``across_orgs(reason)``); any other query raises
    ``UnscopedQueryError`` instead of reading every org's rows. ``all_orgs``, the model's named
    unscoped manager, is the framework's (the admin, forms, related managers) and the few jobs that
    find a row by its own id; each use in the code says why (``tests/core/test_reads_need_an_org``)."""

    org_field = "organization"  # the path from the model to its organization

    def __init__(
        self,
        model: type[models.Model] | None = None,
        query: Query | None = None,
        using: str | None = None,
        hints: dict[str, models.Model] | None = None,
    ) -> None:
        super().__init__(model, query, using, hints)
        self._org_scope: str | None = None  # why this queryset may run: its org, or a reason

    def _clone(self) -> Self:
        clone = cast(Self, super()._clone())  # type: ignore[misc]  # private in the stubs
        clone._org_scope = self._org_scope
        return clone

    def for_org(self, org: Organization | uuid.UUID) -> Self:
        """Only the rows of ``org`` (an organization or its id)."""
        org_id = org.pk if isinstance(org, Organization) else org
        return self.filter(**{f"{self.org_field}_id": org_id})

    def across_orgs(self, reason: str) -> Self:
        """Every organization's rows, on purpose: ``reason`` says why (maintenance, a job that finds a
        row by its own id, a token that names its record)."""
        clone = self.all()
        clone._org_scope = reason
        return clone

    def _names_its_org(self, args: tuple[object, ...], kwargs: dict[str, object]) -> bool:
        """A filter on the org field with given ids (not a queryset of organizations), by keyword or
        as ``AnyOf(F("organization_id"), ids)``."""
        named = {f"{self.org_field}{lookup}" for lookup in _ORG_LOOKUPS}
        by_keyword = any(key in named and not isinstance(value, models.QuerySet) for key, value in kwargs.items())
        return by_keyword or any(  # exactly an F of this query's org column (an OuterRef names the outer query's)
            isinstance(arg, AnyOf) and type(arg.lhs) is models.F and getattr(arg.lhs, "name", None) in named
            for arg in args
        )

    def _filter_or_exclude(self, negate: bool, args: tuple[object, ...], kwargs: dict[str, object]) -> Self:
        clone = cast(Self, super()._filter_or_exclude(negate, args, kwargs))  # type: ignore[misc]  # private in the stubs
        if not negate and clone._org_scope is None and self._names_its_org(args, kwargs):
            clone._org_scope = "org"
        return clone

    def _require_scope(self) -> None:
        if self._org_scope is None:
            raise UnscopedQueryError(
                f"{self.model.__name__}.objects: name the organization (for_org) or say why the query "
                "spans organizations (across_orgs)."
            )

    def _fetch_all(self) -> None:
        if self._result_cache is None:
            self._require_scope()
        super()._fetch_all()

    def raw(
        self,
        raw_query: _ExecuteQuery,
        params: object = (),
        translations: dict[str, str] | None = None,
        using: str | None = None,
    ) -> RawQuerySet[M]:
        self._require_scope()
        return super().raw(raw_query, params, translations, using)

    def aiterator(self, chunk_size: int = 2000) -> AsyncIterator[M]:
        self._require_scope()
        return super().aiterator(chunk_size)

    def resolve_expression(self, *args: object, **kwargs: object) -> object:
        """Used inside another query (``pk__in=queryset``): scoped like any read."""
        self._require_scope()
        resolved: object = super().resolve_expression(*args, **kwargs)
        return resolved

    def _combinator_query(self, combinator: str, *other_qs: models.QuerySet[models.Model], all: bool = False) -> Self:
        """``union`` and the like: scoped only when every part is."""
        combined = cast(Self, super()._combinator_query(combinator, *other_qs, all=all))  # type: ignore[misc]  # private in the stubs
        parts_scoped = self._org_scope is not None and all_parts_scoped(other_qs)
        combined._org_scope = self._org_scope if parts_scoped else None
        return combined

    def __or__(self, other: models.QuerySet[M]) -> Self:
        """``a | b``: scoped only when both parts are (``b``'s rows are read too)."""
        return self._scoped_when_both(super().__or__(other), other)

    def __xor__(self, other: models.QuerySet[M]) -> Self:
        return self._scoped_when_both(super().__xor__(other), other)

    def _scoped_when_both(self, combined: Self, other: models.QuerySet[M]) -> Self:
        if combined is self or combined is other:  # one side was empty: the other, as it is
            return combined
        both = self._org_scope is not None and getattr(other, "_org_scope", None) is not None
        combined._org_scope = self._org_scope if both else None
        return combined

    def count(self) -> int:
        if self._result_cache is None:
            self._require_scope()
        return super().count()

    def exists(self) -> bool:
        if self._result_cache is None:
            self._require_scope()
        return super().exists()

    def aggregate(self, *args: object, **kwargs: object) -> dict[str, Any]:  # an aggregate's type is its expression's
        self._require_scope()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs: object) -> int:
        self._require_scope()
        return super().update(**kwargs)

    def _update(self, values: Sequence[tuple[object, object, object]]) -> int:
        """Django's own write of ``update()`` and of a saved row's fields (field, model, value)."""
        self._require_scope()
        updated: int = super()._update(values)  # type: ignore[misc]  # private in the stubs
        return updated

    def delete(self) -> tuple[int, dict[str, int]]:
        self._require_scope()
        return super().delete()

    def iterator(self, chunk_size: int | None = None) -> Iterator[M]:
        self._require_scope()
        return super().iterator(chunk_size)

    def in_bulk(self, id_list: Iterable[object] | None = None, *, field_name: str = "pk") -> dict[object, M]:
        self._require_scope()
        return super().in_bulk(id_list, field_name=field_name)

    def contains(self, obj: models.Model) -> bool:
        self._require_scope()
        return super().contains(obj)


def all_parts_scoped(parts: tuple[object, ...]) -> bool:
    return all(getattr(part, "_org_scope", "") is not None for part in parts)


class AllOrgsManager[M: models.Model](models.Manager[M]):
    """``all_orgs``: every organization's rows, the framework's default manager (the admin, forms,
    related managers, which a row already scopes). App code names its reason with ``across_orgs``."""

    def get_queryset(self) -> OrgScopedQuerySet[M]:
        queryset = cast(OrgScopedQuerySet[M], super().get_queryset())  # built from an OrgScopedQuerySet
        queryset._org_scope = "all_orgs"
        return queryset


OrgScopedAllOrgsManager = AllOrgsManager.from_queryset(OrgScopedQuerySet)


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


ROLE_RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Membership(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        INVITED = "invited"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    joined_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # An invitation's own words, shown until it is accepted (never the invitee's account: an admin
    # must not learn whether the address has one, nor what it is called)
    invited_email = models.EmailField(blank=True)
    invited_name = models.CharField(max_length=150, blank=True)
    # The member's monthly credit cap (null: none), checked before each of their calls (``member_budget``)
    monthly_credit_limit = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="unique_membership"),
            models.CheckConstraint(
                condition=models.Q(monthly_credit_limit__isnull=True) | models.Q(monthly_credit_limit__gte=0),
                name="membership_credit_limit_non_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "status"]),
            # the members list, newest first: a page is read from the index, not sorted from all members
            models.Index(fields=["organization", "-created_at"], name="orgs_membership_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.user.email} in {self.organization.name} ({self.role})"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def shown_email(self) -> str:
        """The email the organization sees: the invitation's until it is accepted, then the account's."""
        return shown_email(status=self.status, invited_email=self.invited_email, account_email=self.user.email)

    @property
    def shown_name(self) -> str:
        """The name the organization sees: the invitation's until it is accepted, then the account's."""
        return shown_name(status=self.status, invited_name=self.invited_name, account_name=self.user.name)


def shown_email(*, status: str, invited_email: str, account_email: str) -> str:
    """A membership's email as the organization sees it (``Membership.shown_email``), from its columns."""
    if status == Membership.Status.INVITED:
        return invited_email or account_email
    return account_email


def shown_name(*, status: str, invited_name: str, account_name: str) -> str:
    """A membership's name as the organization sees it (``Membership.shown_name``), from its columns."""
    return invited_name if status == Membership.Status.INVITED else account_name


class InvitationQuerySet(OrgScopedQuerySet["Invitation"]):
    org_field = "membership__organization"


InvitationAllOrgsManager = AllOrgsManager.from_queryset(InvitationQuerySet)


class Invitation(models.Model):
    """Which membership an invitation token is for: the token is identity's (accounts), the
    membership it opens is the organization's."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="invitations")
    token = models.OneToOneField("accounts.OneTimeToken", on_delete=models.CASCADE, related_name="invitation")
    created_at = models.DateTimeField(auto_now_add=True)

    all_orgs = InvitationAllOrgsManager()  # the default manager: the framework's, every org
    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation of {self.membership}"


class OrgScopedModel(models.Model):
    """Base for every object an organization owns: UUID id, org FK, timestamps."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class AuditEntry(models.Model):
    """What an operator changed in the back office: who, when, in which organization, what and why.
    Append-only: written by the admin's actions, read in the admin, never edited."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    action = models.CharField(max_length=50, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.action}: {self.object_repr}"


API_KEY_ROLES = [(Role.MEMBER.value, "Member"), (Role.ADMIN.value, "Admin")]  # a key is never an owner


class ApiKey(OrgScopedModel):
    """An org's API key: its servers call LeanCore with ``lc_<prefix>_<secret>``. Only a hash of the
    secret is stored (``orgs.api_keys``); revoked keys stay for the audit trail and the ledger."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, unique=True)
    secret_hash = models.CharField(max_length=64)  # sha256 of the secret, hex
    role = models.CharField(max_length=10, choices=API_KEY_ROLES)
    specialist_ids = models.JSONField(null=True, blank=True)  # None: every specialist of the org
    monthly_credit_limit = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(OrgScopedModel.Meta):
        verbose_name = "API key"
        indexes = [models.Index(fields=["organization", "-created_at"], name="orgs_apikey_org_created")]

    def __str__(self) -> str:
        return f"{self.name} (lc_{self.prefix}_…)"

    def is_usable(self) -> bool:
        """The one rule of a key that works: not revoked, not expired."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

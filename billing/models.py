"""Credits: rates, packages, one account per org, an append-only ledger, holds, alerts, circuit."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from orgs.models import Organization, OrgScopedAllOrgsManager, OrgScopedQuerySet

CREDIT_DIGITS, CREDIT_PLACES = 20, 6  # credits: decimals with 6 places, never floats


class ModelRate(models.Model):
    class Provider(models.TextChoices):
        OPENAI = "openai"
        ANTHROPIC = "anthropic"
        LOCAL = "local"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    display_name = models.CharField(max_length=200)
    input_credits_per_million = models.DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    output_credits_per_million = models.DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField(default=4096)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        constraints = [
            models.CheckConstraint(
                condition=Q(input_credits_per_million__gte=0) & Q(output_credits_per_million__gte=0),
                name="rate_non_negative",
            )
        ]

    def __str__(self) -> str:
        return self.model


class CreditPackage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    credits = models.DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["price_cents"]
        constraints = [models.CheckConstraint(condition=Q(credits__gt=0), name="package_credits_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.credits} credits)"


class CreditAccount(models.Model):
    """One per org. ``balance`` is what the org owns; ``reserved`` is held by calls in flight."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="credit_account")
    balance = models.DecimalField(default=0, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    reserved = models.DecimalField(default=0, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    period_start = models.DateTimeField()
    period_spent = models.DecimalField(default=0, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    updated_at = models.DateTimeField(auto_now=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="account_balance_non_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="account_reserved_non_negative"),
            models.CheckConstraint(condition=Q(period_spent__gte=0), name="account_spent_non_negative"),
        ]
        # the back office's money actions: grant, adjust and refund credits, open and close the circuit
        permissions = [("manage_credits", "Can grant, adjust and refund credits and open or close the circuit")]

    def __str__(self) -> str:
        return f"Account of {self.organization.name}"

    @property
    def available(self) -> Decimal:
        return self.balance - self.reserved


class LedgerEntry(models.Model):
    """Append-only. Ids of specialists, sessions and users are kept as plain values so that
    deleting those objects never edits history."""

    class Kind(models.TextChoices):
        USAGE = "usage"
        GRANT = "grant"
        REFUND = "refund"
        ADJUSTMENT = "adjustment"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # PROTECT: the append-only ledger outlives any attempt to delete its organization
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = models.DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    balance_after = models.DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    specialist_id = models.UUIDField(null=True, blank=True)
    specialist_name = models.CharField(max_length=200, blank=True)
    session_id = models.UUIDField(null=True, blank=True)
    message_id = models.UUIDField(null=True, blank=True)
    user_id = models.UUIDField(null=True, blank=True)
    api_key_id = models.UUIDField(null=True, blank=True)  # the org API key a turn was started with
    package = models.ForeignKey(CreditPackage, null=True, blank=True, on_delete=models.PROTECT)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["organization", "kind", "created_at"]),
            models.Index(fields=["organization", "specialist_id", "created_at"]),
            # a member's usage (their summary, their ledger, the userId filter); an admin's summary reads
            # the org's usage by time through the index above (migration 0009 adds the planner's
            # statistics of the UTC day, so that a grouping by day is aggregated in parallel)
            models.Index(
                fields=["organization", "user_id", "created_at"],
                condition=Q(kind="usage"),
                name="ledger_usage_by_member",
            ),
            # an API key's usage (its api_key_budget, its spentThisPeriod, the apiKeyId filter): the
            # entries of turns started with a key only, so it stays small where keys are little used
            models.Index(
                fields=["organization", "api_key_id", "created_at"],
                condition=Q(kind="usage", api_key_id__isnull=False),
                name="ledger_usage_by_api_key",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_balance_after_non_negative"),
            models.CheckConstraint(condition=~Q(kind="usage") | Q(amount__lte=0), name="ledger_usage_not_positive"),
            models.CheckConstraint(
                condition=~Q(kind__in=["grant", "refund"]) | Q(amount__gt=0), name="ledger_credit_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class Reservation(models.Model):
    """A hold for one LLM call, from reserve() until settle() or release()."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SETTLED = "settled"
        RELEASED = "released"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="reservations")
    # The org's account, so that settling locks the hold and its account in one statement.
    account = models.ForeignKey(CreditAccount, on_delete=models.CASCADE, related_name="reservations")
    amount = models.DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    model = models.CharField(max_length=100)
    # The rates in force when the call was reserved: the call is settled at these.
    input_credits_per_million = models.DecimalField(default=0, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    output_credits_per_million = models.DecimalField(default=0, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    specialist_id = models.UUIDField(null=True, blank=True)
    specialist_name = models.CharField(max_length=200, blank=True)
    session_id = models.UUIDField(null=True, blank=True)
    message_id = models.UUIDField(null=True, blank=True)
    user_id = models.UUIDField(null=True, blank=True)
    api_key_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    charged = models.DecimalField(null=True, blank=True, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    ledger_entry = models.OneToOneField(LedgerEntry, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"]), models.Index(fields=["status", "created_at"])]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="reservation_non_negative")]

    def __str__(self) -> str:
        return f"hold {self.amount} ({self.status})"


class PayerSpend(models.Model):
    """What one payer of an org (a specialist, a member, an API key: the ledger's column that names it)
    spent in one budget period: the sum of that period's usage entries naming it, kept by every
    settlement in its own statement (PostgreSQL), so that a cap's check reads one row instead of
    summing the period's entries. A payer with no row spent nothing in that period."""

    class Payer(models.TextChoices):
        SPECIALIST = "specialist_id"
        MEMBER = "user_id"
        API_KEY = "api_key_id"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    payer = models.CharField(max_length=20, choices=Payer.choices)
    payer_id = models.UUIDField()
    period_start = models.DateTimeField()
    spent = models.DecimalField(default=0, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "payer", "payer_id", "period_start"], name="payer_spend_once_per_period"
            ),
            models.CheckConstraint(condition=Q(spent__gte=0), name="payer_spend_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.payer} {self.payer_id}: {self.spent}"


class DailyUsage(models.Model):
    """What an org's usage cost on one UTC day that is over, per model: the sum of that day's usage
    entries, counted once from the ledger (``billing.usage_days``) so that a page showing weeks of
    usage reads a few rows instead of every entry. A counted day without usage has one row with no
    entries; a day without rows is not counted yet."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    model = models.CharField(max_length=100, blank=True)
    credits = models.DecimalField(default=0, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)  # positive
    entries = models.PositiveIntegerField(default=0)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(fields=["organization", "day", "model"], name="daily_usage_once_per_model"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model or '(none)'}: {self.credits}"


class BudgetAlert(models.Model):
    class Kind(models.TextChoices):
        BUDGET_THRESHOLD = "budget_threshold"
        LOW_BALANCE = "low_balance"
        CIRCUIT_OPENED = "circuit_opened"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    threshold = models.DecimalField(null=True, blank=True, max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES)
    period_start = models.DateTimeField()
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "threshold", "period_start"],
                condition=Q(kind__in=["budget_threshold", "low_balance"]),
                name="alert_once_per_period",
            )
        ]

    def __str__(self) -> str:
        return self.message


class Circuit(models.Model):
    class State(models.TextChoices):
        CLOSED = "closed"
        OPEN = "open"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="circuit")
    state = models.CharField(max_length=10, choices=State.choices, default=State.CLOSED)
    reason = models.CharField(max_length=500, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opened_by_operator = models.BooleanField(
        default=False, help_text="Opened by platform staff (admin or API): only an operator closes it."
    )
    updated_at = models.DateTimeField(auto_now=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.organization.name}: {self.state}"


class CircuitEvent(models.Model):
    """Audit trail: who opened or closed the circuit, and why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="circuit_events")
    state = models.CharField(max_length=10, choices=Circuit.State.choices)
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.state} at {self.created_at}"

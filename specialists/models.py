from __future__ import annotations

from typing import Self

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from orgs.models import AllOrgsManager, OrgScopedModel, OrgScopedQuerySet


class SpecialistQuerySet(OrgScopedQuerySet["Specialist"]):
    def alive(self) -> Self:
        return self.filter(deleted_at__isnull=True)


SpecialistAllOrgsManager = AllOrgsManager.from_queryset(SpecialistQuerySet)


class Specialist(OrgScopedModel):
    """An AI specialist. Deleting one hides it (``deleted_at``); its sessions and usage stay."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        ARCHIVED = "archived"

    name = models.CharField(max_length=200)
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    instructions = models.TextField(blank=True)
    model = models.CharField(max_length=100)
    # tried in order when ``model`` fails before its first output (active model rates, at most 3)
    fallback_models = models.JSONField(default=list, blank=True)
    temperature = models.FloatField(default=0.7, validators=[MinValueValidator(0), MaxValueValidator(2)])
    max_output_tokens = models.PositiveIntegerField(default=1024)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    monthly_credit_limit = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deleted_at = models.DateTimeField(null=True, blank=True)
    tools = models.ManyToManyField("mcps.Tool", blank=True, related_name="specialists")

    all_orgs = SpecialistAllOrgsManager()  # type: ignore[assignment,misc]  # narrows OrgScopedModel's manager
    objects = SpecialistQuerySet.as_manager()  # type: ignore[misc]  # narrows OrgScopedModel's queryset
    # set by the turn's hand-written read: whether the specialist has any tools (not a column)
    has_tools: bool

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "deleted_at", "created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.title})" if self.title else self.name

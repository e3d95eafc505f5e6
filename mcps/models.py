from __future__ import annotations

import uuid

from django.db import models

from orgs.models import OrgScopedAllOrgsManager, OrgScopedModel, OrgScopedQuerySet


class Transport(models.TextChoices):
    STREAMABLE_HTTP = "streamable_http"
    SSE = "sse"


class AuthType(models.TextChoices):
    NONE = "none"
    BEARER = "bearer"
    HEADER = "header"


class CatalogEntry(models.Model):
    """A well-known system an org can connect to; operators keep the list in the admin."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    transport = models.CharField(max_length=20, choices=Transport.choices, default=Transport.STREAMABLE_HTTP)
    url_template = models.CharField(max_length=500)
    auth_type = models.CharField(max_length=10, choices=AuthType.choices, default=AuthType.BEARER)
    docs_url = models.URLField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "catalog entries"

    def __str__(self) -> str:
        return self.name


class Connection(OrgScopedModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        CONNECTED = "connected"
        ERROR = "error"

    name = models.CharField(max_length=200)
    catalog_key = models.CharField(max_length=50, blank=True)
    transport = models.CharField(max_length=20, choices=Transport.choices, default=Transport.STREAMABLE_HTTP)
    url = models.URLField(max_length=1000)
    auth_type = models.CharField(max_length=10, choices=AuthType.choices, default=AuthType.NONE)
    # Fernet token of {"token": …, "headerName": …}; never the plain secret.
    credentials_encrypted = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    last_error = models.TextField(blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)


class Tool(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    input_schema = models.JSONField(default=dict)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    all_orgs = OrgScopedAllOrgsManager()  # the default manager: the framework's, every org
    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["connection", "name"], name="unique_tool_per_connection")]

    def __str__(self) -> str:
        return self.name

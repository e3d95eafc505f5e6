"""Specialist writes."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.models import ModelRate
from billing.services import active_rate
from core.errors import ValidationFailed
from mcps.models import Tool
from orgs.models import Organization
from specialists.models import Specialist


class SpecialistFields(TypedDict, total=False):
    """A specialist's writable fields as the write serializer validates them (an update carries
    only those it changes)."""

    name: str
    title: str
    description: str
    instructions: str
    model: str
    fallback_models: list[str]
    temperature: float
    max_output_tokens: int
    status: str
    monthly_credit_limit: Decimal | None
    tools: list[Tool]


FIELDS = (
    "name",
    "title",
    "description",
    "instructions",
    "model",
    "fallback_models",
    "temperature",
    "max_output_tokens",
    "status",
    "monthly_credit_limit",
)


def _check_model(model: str, max_output_tokens: int | None) -> None:
    try:
        rate = active_rate(model)
    except Exception as exc:
        raise ValidationFailed("model", f"'{model}' is not an active model.") from exc
    if max_output_tokens is not None and max_output_tokens > rate.max_output_tokens:
        raise ValidationFailed("maxOutputTokens", f"{model} produces at most {rate.max_output_tokens} output tokens.")


MAX_FALLBACK_MODELS = 3


def _check_fallbacks(model: str, fallbacks: list[str]) -> None:
    """``fallbackModels``: active models, at most MAX_FALLBACK_MODELS, none repeated, not ``model``."""
    field = "fallbackModels"
    if len(fallbacks) > MAX_FALLBACK_MODELS:
        raise ValidationFailed(field, f"At most {MAX_FALLBACK_MODELS} fallback models.")
    if len(set(fallbacks)) != len(fallbacks):
        raise ValidationFailed(field, "A fallback model is named twice.")
    if model in fallbacks:
        raise ValidationFailed(field, f"'{model}' is the specialist's own model, not a fallback.")
    active = set(ModelRate.objects.filter(model__in=fallbacks, active=True).values_list("model", flat=True))
    for name in fallbacks:
        if name not in active:
            raise ValidationFailed(field, f"'{name}' is not an active model.")


def set_specialist_tools(*, specialist: Specialist, tools: list[Tool]) -> None:
    """Tools must be the org's own and enabled (the org's allow-list)."""
    for tool in tools:
        if tool.organization_id != specialist.organization_id or not tool.enabled:
            raise ValidationFailed("toolIds", f"Tool {tool.pk} is not an enabled tool of this organization.")
    specialist.tools.set(tools)


def _set_tools(specialist: Specialist, tools: list[Tool] | None) -> None:
    if tools is None:
        return
    set_specialist_tools(specialist=specialist, tools=tools)


@transaction.atomic
def create_specialist(*, org: Organization, created_by: User | None, data: SpecialistFields) -> Specialist:
    tools = data.pop("tools", None)
    _check_model(data["model"], data.get("max_output_tokens"))
    _check_fallbacks(data["model"], data.get("fallback_models", []))
    specialist = Specialist.objects.create(
        organization=org, created_by=created_by, **{k: v for k, v in data.items() if k in FIELDS}
    )
    _set_tools(specialist, tools)
    return specialist


@transaction.atomic
def update_specialist(*, specialist: Specialist, data: SpecialistFields) -> Specialist:
    tools = data.pop("tools", None)
    model = data.get("model", specialist.model)
    max_out = data.get("max_output_tokens", specialist.max_output_tokens)
    if "model" in data or "max_output_tokens" in data:
        _check_model(model, max_out)
    if "model" in data or "fallback_models" in data:
        _check_fallbacks(model, data.get("fallback_models", specialist.fallback_models))
    for key, value in data.items():
        if key in FIELDS:
            setattr(specialist, key, value)
    specialist.save()
    _set_tools(specialist, tools)
    return specialist


def delete_specialist(*, specialist: Specialist) -> None:
    """Hides the specialist; its sessions, messages and ledger entries stay readable."""
    specialist.deleted_at = timezone.now()
    specialist.status = Specialist.Status.ARCHIVED
    specialist.save(update_fields=["deleted_at", "status", "updated_at"])

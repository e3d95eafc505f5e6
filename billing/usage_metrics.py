"""What billing tells the Prometheus metrics (``core.metrics``): each billed call's tokens and the
credits charged for it, by model and that model's provider."""

from __future__ import annotations

from decimal import Decimal

from billing.models import ModelRate
from core import metrics

_providers: dict[str, str] = {}  # model → provider, per process (a handful of models)


def remember_provider(rate: ModelRate) -> None:
    """A hold names its rate: its call's settlement then finds the provider without a query."""
    if rate.provider and _providers.get(rate.model) != rate.provider:
        _providers[rate.model] = rate.provider


def provider_of(model: str) -> str:
    """The model's provider: as its hold named it in this process, else read (once per model; a
    worker settling a call held by a server process)."""
    provider = _providers.get(model)
    if provider is None:
        found = ModelRate.objects.filter(model=model).values_list("provider", flat=True).first()
        provider = _providers[model] = found or "unknown"
    return provider


def record_billed_call(*, model: str, input_tokens: int, output_tokens: int, credits: Decimal) -> None:
    """One model call settled: its tokens and credits, whatever road it came by (a turn, a fallback
    attempt, the wizard)."""
    metrics.record_billed_call(
        provider=provider_of(model),
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        credits=credits,
    )

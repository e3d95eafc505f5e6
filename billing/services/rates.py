"""Model rates: the documented JSON shape, upserted; the bundled default file."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction

from billing.models import (
    ModelRate,
)
from core.credits import q

RATE_FIELDS = {
    "model": "model",
    "provider": "provider",
    "displayName": "display_name",
    "inputCreditsPerMillion": "input_credits_per_million",
    "outputCreditsPerMillion": "output_credits_per_million",
    "contextWindow": "context_window",
    "maxOutputTokens": "max_output_tokens",
    "active": "active",
}
REQUIRED_RATE_FIELDS = (
    "model",
    "provider",
    "displayName",
    "inputCreditsPerMillion",
    "outputCreditsPerMillion",
    "contextWindow",
)


@transaction.atomic
def load_model_rates(*, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Upserts rates from the documented JSON shape. Returns (created, updated)."""
    created = updated = 0
    providers = set(ModelRate.Provider.values)
    for index, row in enumerate(rows):
        missing = [name for name in REQUIRED_RATE_FIELDS if name not in row]
        if missing:
            raise ValueError(f"Row {index}: missing {', '.join(missing)}.")
        if row["provider"] not in providers:
            raise ValueError(f"Row {index}: provider must be one of {sorted(providers)}.")
        values = {RATE_FIELDS[key]: value for key, value in row.items() if key in RATE_FIELDS and key != "model"}
        for key in ("input_credits_per_million", "output_credits_per_million"):
            values[key] = q(Decimal(str(values[key])))
            if values[key] < 0:
                raise ValueError(f"Row {index}: rates must not be negative.")
        _, was_created = ModelRate.objects.update_or_create(model=row["model"], defaults=values)
        created += was_created
        updated += not was_created
    return created, updated


BUNDLED_RATES = Path(__file__).resolve().parent.parent / "data" / "model_rates.json"


def load_bundled_rates() -> tuple[int, int]:
    """The rates shipped with the product (also loaded by a data migration)."""
    return load_model_rates(rows=json.loads(BUNDLED_RATES.read_text()))

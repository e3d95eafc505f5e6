"""Model rates: the documented JSON shape, upserted; the bundled default file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.db import transaction

from billing.models import (
    ModelRate,
)
from core.credits import quantize_credits

REQUIRED_RATE_FIELDS = (
    "model",
    "provider",
    "displayName",
    "inputCreditsPerMillion",
    "outputCreditsPerMillion",
    "contextWindow",
)


@dataclass(frozen=True, slots=True)
class RateRow:
    """One model rate of the documented JSON shape, checked: the rates exact, never negative."""

    model: str
    provider: str
    display_name: str
    input_credits_per_million: Decimal
    output_credits_per_million: Decimal
    context_window: int
    max_output_tokens: int | None = None  # None: as stored (or the model's default)
    active: bool | None = None  # None: as stored (a new rate is active)

    def defaults(self) -> dict[str, object]:
        """The stored fields but the key (``model``), for an upsert."""
        return {
            "provider": self.provider,
            "display_name": self.display_name,
            "input_credits_per_million": self.input_credits_per_million,
            "output_credits_per_million": self.output_credits_per_million,
            "context_window": self.context_window,
            **({"max_output_tokens": self.max_output_tokens} if self.max_output_tokens is not None else {}),
            **({"active": self.active} if self.active is not None else {}),
        }


def _rate(index: int, value: object) -> Decimal:
    try:
        rate = quantize_credits(Decimal(str(value)))
    except ArithmeticError:
        raise ValueError(f"Row {index}: rates must be numbers.") from None
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"Row {index}: rates must not be negative.")
    return rate


def parse_rate_rows(raw: object, *, first: int = 0) -> list[RateRow]:
    """The rows of a rates file (a JSON list), checked; ``ValueError`` names the first bad row
    (numbered from ``first``)."""
    if not isinstance(raw, list):
        raise ValueError("The file must hold a JSON list of rates.")
    providers = set(ModelRate.Provider.values)
    rows: list[RateRow] = []
    for index, row in enumerate(raw, start=first):
        if not isinstance(row, dict):
            raise ValueError(f"Row {index}: each rate must be a JSON object.")
        missing = [name for name in REQUIRED_RATE_FIELDS if name not in row]
        if missing:
            raise ValueError(f"Row {index}: missing {', '.join(missing)}.")
        if row["provider"] not in providers:
            raise ValueError(f"Row {index}: provider must be one of {sorted(providers)}.")
        max_output = row.get("maxOutputTokens")
        try:
            rows.append(
                RateRow(
                    model=str(row["model"]),
                    provider=str(row["provider"]),
                    display_name=str(row["displayName"]),
                    input_credits_per_million=_rate(index, row["inputCreditsPerMillion"]),
                    output_credits_per_million=_rate(index, row["outputCreditsPerMillion"]),
                    context_window=int(row["contextWindow"]),
                    max_output_tokens=int(max_output) if max_output is not None else None,
                    active=bool(row["active"]) if "active" in row else None,
                )
            )
        except (TypeError, ValueError) as exc:
            if str(exc).startswith("Row "):
                raise
            raise ValueError(f"Row {index}: {exc}") from None
    return rows


@transaction.atomic
def load_model_rates(*, rows: Sequence[RateRow]) -> tuple[int, int]:
    """Upserts the rates. Returns (created, updated)."""
    created = updated = 0
    for row in rows:
        _, was_created = ModelRate.objects.update_or_create(model=row.model, defaults=row.defaults())
        created += was_created
        updated += not was_created
    return created, updated


BUNDLED_RATES = Path(__file__).resolve().parent.parent / "data" / "model_rates.json"


def load_bundled_rates() -> tuple[int, int]:
    """The rates shipped with the product (also loaded by a data migration)."""
    return load_model_rates(rows=parse_rate_rows(json.loads(BUNDLED_RATES.read_text())))

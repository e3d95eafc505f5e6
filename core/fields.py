"""Shared serializer fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from core.credits import credit_str


class CreditField(serializers.DecimalField):
    """Credits on the wire: a JSON string with exactly 6 fractional digits; more digits → 400."""

    orderable = True  # the number as it is stored: a list may be ordered by it (core.filters)

    def __init__(self, **kwargs: Any) -> None:  # DRF's DecimalField options, handed on as they are
        kwargs.setdefault("max_digits", 20)
        kwargs.setdefault("decimal_places", 6)
        kwargs["coerce_to_string"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Decimal | int | str) -> str:
        return credit_str(value)  # DRF answers None itself, without calling this


class EmptyAsNullCharField(serializers.CharField):
    """A text column shown as null when it is empty (a ledger entry's ``model`` outside a model call)."""

    def to_representation(self, value: object) -> str | None:  # type: ignore[override]  # null, not ""
        return str(value) or None


class EmptyAsNullChoiceField(serializers.ChoiceField):
    """A choice column shown as null when it is empty (a webhook's last status before its first attempt)."""

    def to_representation(self, value: str) -> str | None:  # type: ignore[override]  # null, not ""
        return super().to_representation(value) or None

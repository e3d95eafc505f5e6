"""Credit arithmetic: Decimal with 6 fractional digits, rounded half up. Never floats."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

QUANTUM = Decimal("0.000001")
MILLION = Decimal(1_000_000)


def quantize_credits(value: Decimal | int | str) -> Decimal:
    """A credit amount to the ledger's 6 fractional digits, rounded half up."""
    return Decimal(value).quantize(QUANTUM, rounding=ROUND_HALF_UP)


def credit_str(value: Decimal | int | str) -> str:
    return f"{quantize_credits(value):.6f}"


def token_cost(
    *, input_tokens: int, output_tokens: int, input_per_million: Decimal, output_per_million: Decimal
) -> Decimal:
    """credits = in * rate.in / 1e6 + out * rate.out / 1e6, rounded half up to 6 decimals."""
    raw = Decimal(input_tokens) * input_per_million / MILLION + Decimal(output_tokens) * output_per_million / MILLION
    return quantize_credits(raw)


def period_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The budget period is the calendar month in UTC: [start, end)."""
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = (
        datetime(now.year + 1, 1, 1, tzinfo=UTC)
        if now.month == 12
        else datetime(now.year, now.month + 1, 1, tzinfo=UTC)
    )
    return start, end

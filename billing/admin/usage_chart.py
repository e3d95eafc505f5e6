"""The usage chart of an organization's admin page: pure server-side SVG, nothing from a CDN.

Top: credits used per day over the last 30 days, one bar per day stacked by model. Bottom: the
period's cumulative spend, day by day, against the monthly budget."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from billing.selectors import BURN_WINDOW_DAYS
from billing.usage_days import midnight, usage_by_day, used_between
from core.credits import credit_str, period_bounds
from orgs.models import Organization

DAYS = 30
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
WIDTH, LEFT, RIGHT = 900, 70, 160
BARS_TOP, BARS_HEIGHT = 30, 200
LINE_TOP, LINE_HEIGHT = 290, 140
HEIGHT = LINE_TOP + LINE_HEIGHT + 40


@dataclass
class Usage:
    days: list[date]
    by_day: dict[date, dict[str, Decimal]]  # day -> model -> credits used (positive)
    period_start: date
    period_by_day: dict[date, Decimal]  # every day of the period so far -> credits used that day
    budget: Decimal | None
    models: list[str] = field(default_factory=list)
    burned_last_week: Decimal = Decimal(0)  # credits used in the last 7 days (to the microsecond)

    @property
    def spent_this_period(self) -> Decimal:
        return sum(self.period_by_day.values(), Decimal(0))

    def total(self, day: date) -> Decimal:
        return sum(self.by_day.get(day, {}).values(), Decimal(0))


def usage_of(org: Organization, now: datetime) -> Usage:
    """The page's usage: each day's by model (over days from their counts, ``billing.usage_days``), this
    period's, and what the last 7 days used (their first, partial day summed from the ledger)."""
    now = now.astimezone(UTC)
    today = now.date()
    first = today - timedelta(days=DAYS - 1)
    start = period_bounds(now)[0].date()
    by_day: dict[date, dict[str, Decimal]] = defaultdict(dict)
    period_by_day: dict[date, Decimal] = defaultdict(Decimal)
    models: set[str] = set()
    for day, used_by_model in sorted(usage_by_day(org, first=min(first, start), now=now).items()):
        for model, used in sorted(used_by_model.items()):
            if day >= first:
                by_day[day][model or "(none)"] = used
                models.add(model or "(none)")
            if day >= start:
                period_by_day[day] += used
    week_ago = now - timedelta(days=BURN_WINDOW_DAYS)
    cut = week_ago.date() + timedelta(days=1)  # the first whole day of the week
    burned = used_between(org, start=week_ago, end=midnight(cut))
    burned += sum((sum(used.values(), Decimal(0)) for day, used in by_day.items() if day >= cut), Decimal(0))
    return Usage(
        days=[first + timedelta(days=i) for i in range(DAYS)],
        by_day=dict(by_day),
        period_start=start,
        period_by_day=dict(period_by_day),
        budget=org.monthly_budget,
        models=sorted(models),
        burned_last_week=burned,
    )


def _nice_max(value: Decimal) -> Decimal:
    """A round top for an axis: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        top = Decimal(step).scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)  # pragma: no cover


def _fmt(value: Decimal) -> str:
    return f"{value:,.6f}".rstrip("0").rstrip(".")


def usage_svg(usage: Usage) -> SafeString:
    plot_width = WIDTH - LEFT - RIGHT
    slot = plot_width / len(usage.days)
    bar_width = max(slot * 0.7, 1)
    colors = {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(usage.models)}
    top = _nice_max(max((usage.total(day) for day in usage.days), default=Decimal(0)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" style="max-width:100%;height:auto;font:11px sans-serif">',
        "<title>Credits used per day over the last 30 days, by model, and this period's spend</title>",
        f'<text x="{LEFT}" y="{BARS_TOP - 12}" font-weight="bold">Credits used per day (last {DAYS} days)</text>',
    ]
    # the bars' axis
    for i in range(5):
        value = top * i / 4
        y = BARS_TOP + BARS_HEIGHT - float(value / top) * BARS_HEIGHT
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>')
    for i, day in enumerate(usage.days):
        x = LEFT + i * slot + (slot - bar_width) / 2
        if i % 5 == 0 or i == len(usage.days) - 1:
            parts.append(
                f'<text x="{x + bar_width / 2:.1f}" y="{BARS_TOP + BARS_HEIGHT + 14}" '
                f'text-anchor="middle">{day:%b %d}</text>'
            )
        models = usage.by_day.get(day)
        if not models:
            continue
        total = usage.total(day)
        parts.append(f'<g class="day" data-day="{day.isoformat()}" data-total="{credit_str(total)}">')
        y = float(BARS_TOP + BARS_HEIGHT)
        for model in usage.models:
            used = models.get(model)
            if not used:
                continue
            height = float(used / top) * BARS_HEIGHT
            y -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{max(height, 0.5):.1f}" '
                f'fill="{colors[model]}" data-model="{escape(model)}" data-credits="{credit_str(used)}">'
                f"<title>{day.isoformat()} {escape(model)}: {credit_str(used)} credits</title></rect>"
            )
        parts.append(f"<title>{day.isoformat()}: {credit_str(total)} credits</title></g>")
    # the legend
    for i, model in enumerate(usage.models):
        y = BARS_TOP + i * 16
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 12}" y="{y}" width="10" height="10" fill="{colors[model]}"/>'
            f'<text x="{WIDTH - RIGHT + 26}" y="{y + 9}">{escape(model)}</text>'
        )
    parts.extend(_period_panel(usage, plot_width))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every value above is a number or escaped


def _period_panel(usage: Usage, plot_width: float) -> list[str]:
    today = usage.days[-1]
    days = [usage.period_start + timedelta(days=i) for i in range((today - usage.period_start).days + 1)]
    running, points = Decimal(0), []
    for day in days:
        running += usage.period_by_day.get(day, Decimal(0))
        points.append((day, running))
    budget = usage.budget
    top = _nice_max(max(running, budget or Decimal(0)))
    month_days = 31
    slot = plot_width / month_days

    def y_of(value: Decimal) -> float:
        return LINE_TOP + LINE_HEIGHT - float(value / top) * LINE_HEIGHT

    title = f"Spend this period (since {usage.period_start:%b %d}): {_fmt(running)} credits"
    if budget is not None:
        title += f" of a {_fmt(budget)} credit budget"
    parts = [
        f'<text x="{LEFT}" y="{LINE_TOP - 12}" font-weight="bold" class="period-spend" '
        f'data-spent="{credit_str(running)}">{escape(title)}</text>'
    ]
    for i in range(5):
        value = top * i / 4
        y = y_of(value)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>')
    coords = " ".join(f"{LEFT + (i + 0.5) * slot:.1f},{y_of(value):.1f}" for i, (_, value) in enumerate(points))
    parts.append(f'<polyline class="cumulative" fill="none" stroke="#4e79a7" stroke-width="2" points="{coords}"/>')
    for i, (day, value) in enumerate(points):
        parts.append(
            f'<circle cx="{LEFT + (i + 0.5) * slot:.1f}" cy="{y_of(value):.1f}" r="2" fill="#4e79a7">'
            f"<title>{day.isoformat()}: {credit_str(value)} credits so far</title></circle>"
        )
    if budget is not None:
        y = y_of(budget)
        parts.append(
            f'<line class="budget" data-budget="{credit_str(budget)}" x1="{LEFT}" x2="{LEFT + plot_width}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="#e15759" stroke-dasharray="6 4"/>'
            f'<text x="{LEFT + plot_width + 6}" y="{y + 4:.1f}" fill="#e15759">budget {_fmt(budget)}</text>'
        )
    for i in (0, 9, 19, 30):
        parts.append(
            f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{LINE_TOP + LINE_HEIGHT + 14}" '
            f'text-anchor="middle">day {i + 1}</text>'
        )
    return parts

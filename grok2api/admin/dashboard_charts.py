"""Geometry of the dashboard's requests-per-hour chart: stacked ok/error bars for the last 24 hours.

Pure numbers for an SVG template; no JavaScript chart library is involved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..store.base import UsageRow

HOURS = 24
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 28  # margins for the axis labels


@dataclass(frozen=True)
class Bar:
    hour: int
    label: str  # "14:00"
    ok: int
    error: int
    x: float
    width: float
    ok_y: float
    ok_height: float
    error_y: float
    error_height: float


@dataclass
class Chart:
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, label) for the value axis
    max_value: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM
    labels: list[tuple[float, str]] = field(default_factory=list)  # (x, label) for the hour axis

    @property
    def empty(self) -> bool:
        return all(b.ok == 0 and b.error == 0 for b in self.bars)


def nice_max(value: int) -> int:
    """Round up to 1, 2 or 5 times a power of ten, so the axis reads well."""
    if value <= 0:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def hourly(rows: Iterable[UsageRow], last_hour: int) -> list[tuple[int, int, int]]:
    """(hour, ok, error) for each of the 24 hours ending with ``last_hour``, zeros included."""
    first = last_hour - (HOURS - 1) * 3600
    ok = dict.fromkeys(range(first, last_hour + 1, 3600), 0)
    err = dict(ok)
    for row in rows:
        if row.hour in ok:
            (ok if row.outcome == "ok" else err)[row.hour] += row.count
    return [(h, ok[h], err[h]) for h in ok]


def build(rows: Iterable[UsageRow], last_hour: int) -> Chart:
    series = hourly(rows, last_hour)
    top = nice_max(max((o + e for _, o, e in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / HOURS
    baseline = HEIGHT - BOTTOM
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    for i, (hour, ok, error) in enumerate(series):
        ok_h = plot_h * ok / top
        err_h = plot_h * error / top
        x = LEFT + i * slot + slot * 0.15
        label = datetime.fromtimestamp(hour, UTC).strftime("%H:00")
        bars.append(
            Bar(
                hour,
                label,
                ok,
                error,
                round(x, 1),
                round(slot * 0.7, 1),
                round(baseline - ok_h, 1),
                round(ok_h, 1),
                round(baseline - ok_h - err_h, 1),
                round(err_h, 1),
            )
        )
        if i % 3 == 0:
            labels.append((round(LEFT + i * slot + slot / 2, 1), label))
    ticks = [(round(baseline - plot_h * f, 1), str(int(top * f))) for f in (0, 0.5, 1) if float(top * f).is_integer()]
    return Chart(bars, ticks, top, labels=labels)

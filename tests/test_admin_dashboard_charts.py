from __future__ import annotations

from grok2api.admin.dashboard_charts import HOURS, build, hourly, nice_max
from grok2api.store.base import UsageRow

LAST = 1_800_000_000 // 3600 * 3600


def test_nice_max() -> None:
    assert [nice_max(v) for v in (0, 1, 3, 7, 10, 11, 230, 5001)] == [1, 1, 5, 10, 10, 20, 500, 10000]


def test_hourly_fills_gaps_and_ignores_rows_outside_the_window() -> None:
    rows = [
        UsageRow(hour=LAST, model="m", outcome="ok", count=3),
        UsageRow(hour=LAST, model="n", outcome="ok", count=2),
        UsageRow(hour=LAST - 3600, model="m", outcome="error", count=1),
        UsageRow(hour=LAST - HOURS * 3600, model="m", outcome="ok", count=99),
    ]
    series = hourly(rows, LAST)
    assert len(series) == HOURS and series[0][0] == LAST - (HOURS - 1) * 3600
    assert series[-1] == (LAST, 5, 0) and series[-2] == (LAST - 3600, 0, 1)
    assert sum(o + e for _, o, e in series) == 6


def test_bars_are_stacked_and_scaled_to_the_axis() -> None:
    chart = build(
        [
            UsageRow(hour=LAST, model="m", outcome="ok", count=6),
            UsageRow(hour=LAST, model="m", outcome="error", count=4),
        ],
        LAST,
    )
    assert chart.max_value == 10 and not chart.empty
    bar = chart.bars[-1]
    plot_height = chart.baseline - 12
    assert bar.ok_height == round(plot_height * 0.6, 1) and bar.error_height == round(plot_height * 0.4, 1)
    assert bar.ok_y + bar.ok_height == chart.baseline
    assert bar.error_y + bar.error_height == bar.ok_y  # errors sit on top of the ok part
    assert [label for _, label in chart.ticks] == ["0", "5", "10"]
    assert len(chart.labels) == 8
    assert build([], LAST).empty

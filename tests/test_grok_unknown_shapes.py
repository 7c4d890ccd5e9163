"""The counter of upstream shapes the parsers skip, and its metric lines."""

from __future__ import annotations

import logging

import pytest

from grok2api.grok.unknown_shapes import UnknownShapes, metric_lines


def test_counts_by_type_and_logs_each_type_once(caplog: pytest.LogCaptureFixture) -> None:
    shapes = UnknownShapes()
    with caplog.at_level(logging.WARNING, logger="grok2api.grok.unknown"):
        for name in ("event:x", "event:x", "chunk:y", "event:x"):
            shapes.note(name)
    assert shapes.counts == {"event:x": 3, "chunk:y": 1}
    assert [r.getMessage().count("event:x") for r in caplog.records] == [1, 0]


def test_the_number_of_types_and_their_length_are_capped() -> None:
    shapes = UnknownShapes(max_types=2)
    for name in ("a", "b", "c", "d", "a", "x" * 500):
        shapes.note(name)
    assert shapes.counts == {"a": 2, "b": 1, "other": 3}
    long = UnknownShapes()
    long.note("y" * 500)
    assert list(long.counts) == ["y" * 80]


def test_metric_lines_are_prometheus_text_with_escaped_labels() -> None:
    shapes = UnknownShapes()
    shapes.note('event:odd"name\\')
    shapes.note("chunk:z")
    shapes.note("chunk:z")
    assert metric_lines(shapes) == [
        "# HELP grok2api_upstream_unknown_total Upstream events, chunks and channels grok2api did not know "
        "and skipped (this process).",
        "# TYPE grok2api_upstream_unknown_total counter",
        'grok2api_upstream_unknown_total{type="chunk:z"} 2',
        'grok2api_upstream_unknown_total{type="event:odd\\"name\\\\"} 1',
    ]

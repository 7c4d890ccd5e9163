"""Counts the shapes grok.com sends that the parsers do not know (event types, chunk kinds, channels),
so a protocol change shows up in the metrics instead of as silently missing output."""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("grok2api.grok.unknown")

METRIC = "grok2api_upstream_unknown_total"
_MAX_NAME = 80
_OTHER = "other"


class UnknownShapes:
    """A counter by shape name. Names come from upstream, so both their length and how many distinct
    names are kept are capped (beyond the cap they count as ``other``): the metric stays bounded."""

    def __init__(self, max_types: int = 200) -> None:
        self.counts: Counter[str] = Counter()
        self.max_types = max_types

    def note(self, name: str) -> None:
        name = name[:_MAX_NAME]
        if name not in self.counts:
            if len(self.counts) >= self.max_types:
                name = _OTHER
            else:
                log.warning("grok.com sent an unknown %s; it was skipped (counted in %s)", name, METRIC)
        self.counts[name] += 1


UNKNOWN_SHAPES = UnknownShapes()  # process-wide: every parser in the process counts here


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metric_lines(shapes: UnknownShapes = UNKNOWN_SHAPES) -> list[str]:
    """The counter in the Prometheus text format (HELP, TYPE, one line per shape)."""
    lines = [
        f"# HELP {METRIC} Upstream events, chunks and channels grok2api did not know and skipped (this process).",
        f"# TYPE {METRIC} counter",
    ]
    lines += [f'{METRIC}{{type="{_label(name)}"}} {n}' for name, n in sorted(shapes.counts.items())]
    return lines

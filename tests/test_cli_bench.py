"""``grok2api bench`` runs end to end (a quick smoke run; its figures are not asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_bench_quick_run_completes_without_errors() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROK2API_")}
    done = subprocess.run(
        [sys.executable, "-m", "grok2api", "bench", "--quick", "--streams", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"time to first token, c=1 median: direct [\d.]+ ms, gateway [\d.]+ ms", out)
    assert re.search(r"non-stream throughput, c=16: direct \d+ req/s, gateway \d+ req/s, ratio [\d.]+", out)
    assert "30 concurrent streams" in out and "errors 0" in out

"""``grok2api bench`` runs end to end (a quick smoke run; its figures are not asserted, only that every row of
the table was measured on both sides, judged against its target, and that no request failed)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grok2api.cli import bench
from grok2api.grok.browser import available as curl_available

STREAMS = 30
MAIN_ROWS = ["ttfb", "ttft", "rps", "few_ttft", "many_wall", "many_ttft", "many_gap"]


def _result(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("result ")]
    assert len(lines) == 1, stdout[-2000:]
    result: dict[str, Any] = json.loads(lines[0][len("result ") :])
    return result


def test_bench_quick_run_measures_every_row_against_direct(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROK2API_")}
    out_file = tmp_path / "bench.json"
    # On hypercorn: the rest of the suite runs the built-in server, the default with the dev extra.
    args = ["--quick", "--streams", str(STREAMS), "--workers", "2", "--http-server", "hypercorn"]
    args += ["--json", str(out_file)]
    done = subprocess.run(
        [sys.executable, "-m", "grok2api", "bench", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    out = done.stdout
    assert "error x" not in out, out
    result = _result(out)
    assert json.loads(out_file.read_text()) == result  # the file keeps the same result
    assert (result["quick"], result["workers"], result["chat_transport"]) == (True, 2, "ws")
    assert result["http_server"] == "hypercorn" and "hypercorn HTTP server" in out
    assert result["machine"]["usable_cpus"] >= 1 and result["date"]
    rows = {r["key"]: r for r in result["upstreams"][0]["rows"]}
    assert result["upstreams"][0]["upstream"] == "aiohttp"
    assert [k for k in rows if k != "memory"] == MAIN_ROWS
    for key in MAIN_ROWS:
        row = rows[key]
        assert row["direct"] > 0 and row["gateway"] > 0, row
        assert isinstance(row["met"], bool) and not math.isnan(row["value"]), row
        line = rf"\| {re.escape(row['label'])} \| .* \| {re.escape(row['target'])} \| (yes|\*\*no\*\*) \|"
        assert re.search(line, out), row
    if "memory" in rows:
        assert rows["memory"]["direct"] is None and rows["memory"]["gateway"] > 0
    assert rows["rps"]["value"] == pytest.approx(rows["rps"]["gateway"] / rows["rps"]["direct"])
    assert rows["ttfb"]["value"] == pytest.approx(rows["ttfb"]["gateway"] - rows["ttfb"]["direct"])
    streams = result["upstreams"][0]["streams"]
    assert streams["many"]["direct"]["tokens"] == streams["many"]["gateway"]["tokens"] == STREAMS * bench.STREAM_TOKENS
    cpu = result["upstreams"][0]["cpu_ms_per_request"]
    assert cpu["gateway_ms"] > 0
    if curl_available():
        other = result["upstreams"][1]
        assert other["upstream"] == "curl_cffi" and [r["key"] for r in other["rows"]] == ["ttfb", "ttft"]
    for upstream in result["upstreams"]:
        assert upstream["errors"] == {"direct": 0, "gateway": 0}, upstream
    assert result["all_met"] == all(r["met"] for r in result["rows"])
    assert "failed requests: 0" in out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chat": "grpc"}, "chat transport"),
        ({"upstream": "requests"}, "upstream transport"),
        ({"streams": 0}, "streams"),
        ({"workers": 65}, "workers"),
        ({"server": "nginx"}, "GROK2API_HTTP_SERVER"),
    ],
)
def test_bench_refuses_bad_arguments_before_starting_anything(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        asyncio.run(bench.main(quick=True, **kwargs))


def test_bench_command_line_offers_each_transport() -> None:
    with pytest.raises(SystemExit) as exc:
        bench.cli(["--chat", "grpc"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("direct", "gateway", "key", "met"),
    [
        (2.0, 2.9, "ttfb", True),  # +0.9 ms
        (2.0, 3.2, "ttfb", False),
        (355.0, 290.0, "rps", True),  # 0.82×
        (355.0, 218.0, "rps", False),
        (2.78, 3.1, "many_wall", True),  # 1.12×
        (118.0, 337.0, "many_gap", False),  # 2.9×
        (None, 110.0, "memory", True),
    ],
)
def test_rows_are_judged_against_the_issue_targets(direct: float | None, gateway: float, key: str, met: bool) -> None:
    row = bench.Row.of(key, key, "ms", direct, gateway)
    assert row.met is met


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 1), (8, 7)])
def test_the_gateway_leaves_the_fake_a_cpu_unless_told(
    monkeypatch: pytest.MonkeyPatch, cpus: int, workers: int
) -> None:
    monkeypatch.setattr(bench, "usable_cpus", lambda: cpus)
    assert bench.bench_workers() == workers

"""``grok2api bench`` runs end to end over both chat transports (a quick smoke run; its figures are
not asserted, only that every measurement was taken and no request failed)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from grok2api.cli import bench

STREAMS = 30


def _result(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("result ")]
    assert len(lines) == 1, stdout[-2000:]
    result: dict[str, Any] = json.loads(lines[0][len("result ") :])
    return result


def test_bench_quick_run_measures_both_transports_without_errors() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROK2API_")}
    done = subprocess.run(
        [sys.executable, "-m", "grok2api", "bench", "--quick", "--streams", str(STREAMS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    out = done.stdout
    assert "error x" not in out, out
    result = _result(out)
    by_name = {t["transport"]: t for t in result["transports"]}
    assert sorted(by_name) == ["rest", "ws"]
    for name, t in by_name.items():
        assert t["errors_direct"] == 0 and t["errors_gateway"] == 0, (name, t)
        for side in ("ttft_direct", "ttft_gateway"):
            assert t[side]["samples"] == 5 and t[side]["median_ms"] > 0, (name, side, t[side])
        assert t["rps_direct"] > 0 and t["rps_gateway"] > 0, (name, t)
        for side in ("streams_direct", "streams_gateway"):
            assert t["streams"] == STREAMS and t[side]["chunks"] >= STREAMS, (name, side, t[side])
        assert re.search(
            rf"\[{name}\] time to first token, c=1: direct median [\d.]+ ms p90 [\d.]+ ms; "
            rf"gateway median [\d.]+ ms p90 [\d.]+ ms; added median -?[\d.]+ ms",
            out,
        )
        assert re.search(rf"\[{name}\] non-stream throughput, c=16: direct \d+ req/s, gateway \d+ req/s", out)
        assert f"[{name}] {STREAMS} concurrent streams" in out
        assert re.search(rf"\[{name}\] gateway peak memory .*; errors direct 0 gateway 0\n", out)
    ws = by_name["ws"]
    assert ws["ws_setup"]["samples"] == 5 and ws["ws_setup"]["median_ms"] >= ws["ws_handshake"]["median_ms"] > 0
    assert re.search(r"\[ws\] WebSocket set-up per turn, direct: handshake median [\d.]+ ms", out)
    assert re.search(r"\[ws\] time to first token.*\(within 2 ms: (yes|no)\)", out)
    assert by_name["rest"]["ws_setup"] is None


@pytest.mark.parametrize(("kwargs", "message"), [({"transport": "grpc"}, "transport"), ({"streams": 0}, "streams")])
def test_bench_refuses_bad_arguments_before_starting_anything(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        asyncio.run(bench.main(quick=True, **kwargs))


def test_bench_command_line_offers_each_transport() -> None:
    with pytest.raises(SystemExit) as exc:
        bench.cli(["--transport", "grpc"])
    assert exc.value.code == 2

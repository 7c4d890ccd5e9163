"""``grok2api bench``: the gateway against the fake grok.com on loopback, every figure measured against a
direct client of the fake in the same run, so the difference is the gateway's own cost.

The direct client speaks to the fake exactly as the gateway does, with the gateway's own protocol code
(``stream_mgw`` over the same transport after one ``/api/auth/session`` per account; or the REST body),
so both sides pay the same set-up and parsing; the gateway is read through the bench's own HTTP client
(``bench_http``), as light as the direct side's WebSocket client. The fake and the gateway (``--workers``
processes) run as separate processes, as in production; the load generator is this process. Everything binds
to 127.0.0.1, every loop is bounded in count and every phase in time.

The gateway's workers default to one per usable CPU but one (``bench_workers``): the fake stands for grok.com,
a service on other machines in production, and under the throughput load it keeps one CPU busy by itself;
sized like production for every CPU, the gateway would bid against grok.com for its CPUs, which no deployment
does. ``--workers`` sets any count.

The measures are the rows of the performance table in the README, each with its target; the run prints
them as a Markdown table, then the whole result as one JSON line (``result {…}``), also written to
``--json FILE``. It exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import aiohttp
import msgspec

from ..config import BootConfig, usable_cpus
from ..grok.transport import AiohttpTransport, Transport
from ..serving import HTTP_SERVERS, http_server, loop_factory, worker_class
from ..settings import RuntimeSettings
from ..store import make_store
from . import bench_procs as procs
from .bench_http import HttpClient
from .bench_procs import BenchError
from .bench_targets import DirectRest, DirectWs, Gateway, GatewayAiohttp, Target, ignore

ChatName = Literal["ws", "rest"]
CHATS: tuple[ChatName, ...] = ("ws", "rest")
UPSTREAMS = ("aiohttp", "curl_cffi")
MIN_ACCOUNTS = 40
TURNS_PER_ACCOUNT = 300  # the fake gives a heavy account 400 fast queries per window: keep a margin
MAX_STREAMS = 2000
PHASE_SECONDS = 120.0  # no phase of the run may take longer
CONCURRENCY = 16  # the non-stream throughput row
SETTINGS_SETTLE = 2.5  # seconds for a setting written to the store to reach every worker (they look every second)
FEW_STREAMS = 50
STREAM_TOKENS, STREAM_PACE = 20, 0.1
TTFT_TOKENS, TTFT_THINK = 5, 0.02  # grok.com thinks 20 ms before its first token: the gateway waits idle
TTFB_PROMPT = "[[tokens:5]] first byte"  # unpaced: the first byte is the answer's first token
TTFT_PROMPT = f"[[tokens:{TTFT_TOKENS}]] [[fault:stall-first:{TTFT_THINK}]] first token"
THROUGHPUT_PROMPT = "[[tokens:20]] throughput"
STREAM_PROMPT = f"[[tokens:{STREAM_TOKENS}]] [[fault:slow-tokens:{STREAM_PACE}]] stream"
WARM_PROMPT = "[[tokens:3]] [[fault:slow-tokens:0.2]] warm up"  # slow, so a burst of them uses every account
_ENC = msgspec.json.Encoder()


# ------------------------------------------------------------------------------------ the targets


@dataclass(frozen=True)
class Goal:
    """What a row must show: ``added`` gateway − direct ≤ limit; ``ratio_min`` gateway / direct ≥ limit;
    ``ratio_max`` gateway / direct ≤ limit; ``max`` gateway ≤ limit."""

    kind: Literal["added", "ratio_min", "ratio_max", "max"]
    limit: float
    text: str

    def judge(self, direct: float | None, gateway: float) -> tuple[float, bool]:
        if self.kind == "max":
            return gateway, gateway <= self.limit
        if direct is None or not direct:
            return math.nan, False
        if self.kind == "added":
            added = gateway - direct
            return added, added <= self.limit
        ratio = gateway / direct
        return ratio, ratio >= self.limit if self.kind == "ratio_min" else ratio <= self.limit


GOALS = {
    "ttfb": Goal("added", 1.0, "≤ +1 ms"),
    "ttft": Goal("added", 1.0, "≤ +1 ms"),
    "rps": Goal("ratio_min", 0.8, "≥ 0.8×"),
    "few_ttft": Goal("added", 50.0, "≤ +50 ms"),
    "many_wall": Goal("ratio_max", 1.15, "≤ 1.15×"),
    "many_ttft": Goal("added", 300.0, "≤ +300 ms"),
    "many_gap": Goal("ratio_max", 2.0, "≤ 2× direct"),
    "memory": Goal("max", 160.0, "≤ 160 MiB"),
}


@dataclass
class Row:
    key: str
    label: str
    unit: str
    direct: float | None
    gateway: float
    value: float  # what the goal judges: the gateway's added time, its ratio to direct, or its own figure
    kind: str  # the goal's kind
    target: str
    met: bool

    @classmethod
    def of(cls, key: str, label: str, unit: str, direct: float | None, gateway: float) -> Row:
        g = GOALS[key]
        value, met = g.judge(direct, gateway)
        return cls(key, label, unit, direct, gateway, value, g.kind, g.text, met)


# ------------------------------------------------------------------------------------ measurements


@dataclass
class Errors:
    count: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, exc: BaseException) -> None:
        self.count += 1
        self.kinds[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1


def pct(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


async def bounded(work: Awaitable[Any], what: str) -> Any:
    try:
        async with asyncio.timeout(PHASE_SECONDS):
            return await work
    except TimeoutError:
        raise BenchError(f"{what} took longer than {PHASE_SECONDS:.0f} s") from None


def _stamp(stamps: list[float]) -> None:
    stamps.append(time.perf_counter())


async def first_token(target: Target, prompt: str, errors: Errors) -> float | None:
    stamps: list[float] = []
    start = time.perf_counter()
    try:
        await target.stream(prompt, partial(_stamp, stamps))
    except Exception as exc:
        errors.add(exc)
        return None
    if not stamps:
        errors.add(BenchError("an answer without text"))
        return None
    return stamps[0] - start


async def paired(
    sides: Sequence[tuple[Target, Errors]], prompt: str, count: int, what: str
) -> tuple[list[float], list[float]]:
    """Time to first token at c=1, direct and gateway samples interleaved (the order swapping each
    round), so a noisy neighbour on the machine weighs on both sides alike."""
    samples: tuple[list[float], list[float]] = ([], [])

    async def run() -> None:
        for i in range(count):
            for side in (0, 1) if i % 2 == 0 else (1, 0):
                target, errors = sides[side]
                sample = await first_token(target, prompt, errors)
                if sample is not None:
                    samples[side].append(sample)

    await bounded(run(), what)
    return samples


async def throughput(target: Target, total: int, errors: Errors) -> int:
    """``total`` non-stream turns, CONCURRENCY at a time; how many ended well."""
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            try:
                await target.full(THROUGHPUT_PROMPT)
            except Exception as exc:
                errors.add(exc)

    failed_before = errors.count
    await bounded(asyncio.gather(*(worker() for _ in range(CONCURRENCY))), "throughput")
    return total - (errors.count - failed_before)


@dataclass
class Streams:
    """Concurrent streams: wall time of the burst, each stream's first token and the gaps between its tokens."""

    walls: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "wall_s": median(self.walls),
            "ttft_p50_ms": median(self.firsts) * 1000,
            "gap_p99_ms": pct(self.gaps, 99) * 1000,
            "tokens": len(self.firsts) + len(self.gaps),
        }


async def streams(target: Target, n: int, errors: Errors, into: Streams) -> None:
    start = time.perf_counter()

    async def one() -> None:
        last = 0.0

        def tick() -> None:
            nonlocal last
            now = time.perf_counter()
            if last:
                into.gaps.append(now - last)
            else:
                into.firsts.append(now - start)
            last = now

        try:
            await target.stream(STREAM_PROMPT, tick)
        except Exception as exc:
            errors.add(exc)

    await bounded(asyncio.gather(*(one() for _ in range(n))), f"{n} concurrent streams")
    into.walls.append(time.perf_counter() - start)


# ------------------------------------------------------------------------------------ one gateway


@dataclass
class Plan:
    ttfb: int = 100
    ttft: int = 100  # (its median moves by a tenth of a millisecond from run to run with 40)
    setup: int = 50
    requests: int = 800
    few: int = FEW_STREAMS
    few_rounds: int = 2
    many: int = 500
    other_ttfb: int = 60  # the other upstream transport's rows, and the c=1 rows through aiohttp's client
    other_ttft: int = 50

    @classmethod
    def quick(cls, many: int) -> Plan:
        return cls(5, 3, 5, 48, min(10, many), 1, many, 5, 2)

    def turns(self) -> int:
        """Turns of one side of the run (for the accounts' quota at the fake)."""
        main = self.ttfb + self.ttft + self.setup + self.requests + self.few * self.few_rounds + self.many
        return main + 3 * (self.other_ttfb + self.other_ttft) + 60


@dataclass
class Run:
    """The fixed parts of one run."""

    plan: Plan
    tokens: list[str]
    fake_url: str
    fake: subprocess.Popen[bytes]
    work: Path
    env: dict[str, str]
    workers: int
    chat: ChatName

    async def reset_fake(self) -> None:
        """Forget what the fake recorded (every request and frame it served), so its growing records cost
        neither side more than the other."""
        async with aiohttp.ClientSession() as http, http.post(f"{self.fake_url}/__fake/reset") as resp:
            if resp.status != 200:
                raise BenchError(f"the fake refused to reset: {resp.status}")


class Side:
    """One gateway process (with its workers) and the direct client it is compared with."""

    def __init__(self, run: Run, upstream: str) -> None:
        self.run, self.upstream = run, upstream
        self.errors_direct, self.errors_gateway = Errors(), Errors()
        self.gw: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.transport: Transport | None = None
        self.direct: DirectWs | DirectRest | None = None

    async def __aenter__(self) -> Side:
        run = self.run
        data = run.work / f"gateway-{self.upstream}"
        env = {
            **run.env,
            "GROK2API_DATA_DIR": str(data),
            "GROK2API_CHAT_TRANSPORT": run.chat,
            "GROK2API_UPSTREAM_TRANSPORT": self.upstream,
        }
        py = sys.executable
        subprocess.run(
            [py, "-m", "grok2api", "accounts", "add", "--tier", "heavy", *run.tokens],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = procs.free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = [py, "-m", "grok2api", "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(run.workers)]
        self.gw = procs.spawn(args, env, run.work / f"gateway-{self.upstream}.log")
        self.transport = _transport(self.upstream)
        settings = RuntimeSettings(
            upstream_url=run.fake_url,
            assets_url=f"{run.fake_url}/assets",
            chat_transport=run.chat,
            upstream_transport=self.upstream,  # type: ignore[arg-type]
        )
        kind = DirectWs if run.chat == "ws" else DirectRest
        self.direct = kind(self.transport, settings, run.tokens)
        await procs.wait_http(f"{self.url}/healthz", self.gw)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.transport is not None:
            await self.transport.close()
        if self.gw is not None:
            procs.stop([self.gw])

    async def set_spares(self, seconds: float) -> None:
        """Set the gateway's ``spare_socket_seconds`` in its store, and wait until its workers have read it."""
        store = make_store("file", "", self.run.work / f"gateway-{self.upstream}")
        await store.open()
        try:
            await store.save_settings({"spare_socket_seconds": seconds})
        finally:
            await store.close()
        await asyncio.sleep(SETTINGS_SETTLE)

    def http(self) -> HttpClient:
        """The bench's HTTP client of this gateway (see ``bench_http``)."""
        host, _, port = self.url.removeprefix("http://").rpartition(":")
        return HttpClient(host, int(port))

    def pids(self) -> list[int]:
        assert self.gw is not None
        return procs.family(self.gw.pid)

    def memory(self) -> tuple[float | None, float | None]:
        """(largest process, all processes) peak resident memory of the gateway, in MiB."""
        peaks = [p for p in (procs.peak_rss_mib(pid) for pid in self.pids()) if p is not None]
        return (max(peaks), sum(peaks)) if peaks else (None, None)

    async def warm_up(self, gateway: Gateway) -> None:
        """Connections up, and every account known to every worker (its user id and windows learned), so
        no timed turn pays a first-use cost that the direct client paid in its own warm-up."""
        assert self.direct is not None
        await self.direct.warm_up()
        burst = len(self.run.tokens) * self.run.workers
        await asyncio.gather(*(gateway.full(WARM_PROMPT) for _ in range(burst)))
        for _ in range(3):
            for target in (self.direct, gateway):
                await target.full(TTFB_PROMPT)
                await target.stream(TTFB_PROMPT, ignore)
        await asyncio.sleep(1.0)  # the gateway learns the accounts' windows in the background after answering

    def report_errors(self) -> None:
        for side, errors in (("direct", self.errors_direct), ("gateway", self.errors_gateway)):
            for kind, count in errors.kinds.most_common(3):
                print(f"  [{self.upstream}] {side} error x{count}: {kind}")


def _transport(upstream: str) -> Transport:
    if upstream == "curl_cffi":
        from ..grok.browser import CurlTransport

        return CurlTransport()
    return AiohttpTransport()


def _client_session() -> aiohttp.ClientSession:
    # Idle connections are dropped before the gateway's own 5 s keep-alive would close them under a request.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=3)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=PHASE_SECONDS))


def _ms(values: Sequence[float]) -> float:
    return median(values) * 1000


async def measure_main(run: Run, upstream: str) -> dict[str, Any]:
    """Every row of the table, over one upstream transport."""
    plan = run.plan
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    async with Side(run, upstream) as side, side.http() as http, _client_session() as aio:
        gateway = Gateway(http)
        direct = side.direct
        assert direct is not None
        await bounded(side.warm_up(gateway), "warm-up")
        pair = ((direct, side.errors_direct), (gateway, side.errors_gateway))

        if isinstance(direct, DirectWs):
            extra["ws_setup"] = await _setup(direct, plan.setup, side.errors_direct)
        await run.reset_fake()
        d, g = await paired(pair, TTFB_PROMPT, plan.ttfb, "time to first byte")
        rows.append(Row.of("ttfb", "time to first byte, c=1, median", "ms", _ms(d), _ms(g)))
        extra["ttfb_p90_ms"] = {"direct": pct(d, 90) * 1000, "gateway": pct(g, 90) * 1000}
        await run.reset_fake()
        d, g = await paired(pair, TTFT_PROMPT, plan.ttft, "time to first token")
        label = f"time to first token, c=1 (first of {TTFT_TOKENS} after {TTFT_THINK * 1000:.0f} ms), median"
        rows.append(Row.of("ttft", label, "ms", _ms(d), _ms(g)))
        # The same two rows with no spare chat sockets: every turn opens its socket after the request, as the
        # direct client does (reported, not judged: the default keeps spares for a chatting account).
        await side.set_spares(0.0)
        await run.reset_fake()
        d, g = await paired(pair, TTFB_PROMPT, plan.other_ttfb, "time to first byte (no spares)")
        d2, g2 = await paired(pair, TTFT_PROMPT, plan.other_ttft, "time to first token (no spares)")
        extra["no_spares_added_ms"] = {"ttfb": _ms(g) - _ms(d), "ttft": _ms(g2) - _ms(d2)}
        await side.set_spares(RuntimeSettings().spare_socket_seconds)
        # The same two rows as a client on aiohttp sees them (reported, not judged: see ``bench_http``).
        aiohttp_client = GatewayAiohttp(aio, side.url)
        through_aiohttp = ((direct, side.errors_direct), (aiohttp_client, side.errors_gateway))
        await run.reset_fake()
        for _ in range(3):  # its connection up
            await aiohttp_client.stream(TTFB_PROMPT, ignore)
        d, g = await paired(through_aiohttp, TTFB_PROMPT, plan.other_ttfb, "time to first byte (aiohttp)")
        d2, g2 = await paired(through_aiohttp, TTFT_PROMPT, plan.other_ttft, "time to first token (aiohttp)")
        extra["aiohttp_client_added_ms"] = {
            "ttfb": _ms(g) - _ms(d),
            "ttft": _ms(g2) - _ms(d2),
        }

        # Halves in the order direct, gateway, gateway, direct: drift on the machine weighs on both alike.
        cpu: dict[str, float] = {}
        fake = [run.fake.pid]
        half = max(CONCURRENCY, plan.requests // 2)
        spent: dict[str, list[float]] = {"direct": [0.0, 0.0, 0.0, 0.0], "gateway": [0.0, 0.0, 0.0, 0.0]}
        sides = {"direct": (direct, side.errors_direct), "gateway": (gateway, side.errors_gateway)}
        for name in ("direct", "gateway", "gateway", "direct"):
            target, errors = sides[name]
            await run.reset_fake()
            pids = side.pids() if name == "gateway" else []
            before = (time.process_time(), procs.cpu_seconds(fake), procs.cpu_seconds(pids))
            started = time.perf_counter()
            done = await throughput(target, half, errors)
            elapsed = time.perf_counter() - started
            after = (time.process_time(), procs.cpu_seconds(fake), procs.cpu_seconds(pids))
            totals = spent[name]
            for i, (a, b) in enumerate(zip(after, before, strict=True)):
                totals[i] += a - b
            totals[3] += elapsed
            cpu[f"{name}_requests"] = cpu.get(f"{name}_requests", 0) + done
        for name, (client_s, fake_s, gateway_s, elapsed) in spent.items():
            count = cpu.pop(f"{name}_requests")
            cpu[f"{name}_rps"] = count / elapsed
            cpu[f"{name}_client_ms"], cpu[f"{name}_fake_ms"] = client_s * 1000 / count, fake_s * 1000 / count
            if name == "gateway":
                cpu["gateway_ms"] = gateway_s * 1000 / count
        label = f"non-stream requests/s, c={CONCURRENCY}"
        rows.append(Row.of("rps", label, "req/s", cpu["direct_rps"], cpu["gateway_rps"]))
        extra["cpu_ms_per_request"] = {k: v for k, v in cpu.items() if k.endswith("_ms")}

        few = (Streams(), Streams())
        for r in range(plan.few_rounds):
            for s in (0, 1) if r % 2 == 0 else (1, 0):
                await run.reset_fake()
                await streams(pair[s][0], plan.few, pair[s][1], few[s])
        pace = f"{STREAM_TOKENS} tokens × {STREAM_PACE * 1000:.0f} ms"
        fd, fg = few[0].summary(), few[1].summary()
        label = f"{plan.few} concurrent streams ({pace}): time to first token p50"
        rows.append(Row.of("few_ttft", label, "ms", fd["ttft_p50_ms"], fg["ttft_p50_ms"]))

        many = (Streams(), Streams())
        for s in (0, 1):
            await run.reset_fake()
            await streams(pair[s][0], plan.many, pair[s][1], many[s])
        md, mg = many[0].summary(), many[1].summary()
        rows.append(Row.of("many_wall", f"{plan.many} concurrent streams: wall time", "s", md["wall_s"], mg["wall_s"]))
        label = f"{plan.many} streams: time to first token p50"
        rows.append(Row.of("many_ttft", label, "ms", md["ttft_p50_ms"], mg["ttft_p50_ms"]))
        label = f"{plan.many} streams: gap between chunks p99"
        rows.append(Row.of("many_gap", label, "ms", md["gap_p99_ms"], mg["gap_p99_ms"]))
        extra["streams"] = {"few": {"direct": fd, "gateway": fg}, "many": {"direct": md, "gateway": mg}}

        largest, total = side.memory()
        if largest is not None and total is not None:
            rows.append(Row.of("memory", "gateway peak memory (largest process)", "MiB", None, largest))
            extra["memory_all_processes_mib"] = total
        side.report_errors()
        extra["errors"] = {"direct": side.errors_direct.count, "gateway": side.errors_gateway.count}
    return {"upstream": upstream, "rows": [asdict(r) for r in rows], **extra}


async def measure_latency(run: Run, upstream: str) -> dict[str, Any]:
    """The c=1 rows alone, over another upstream transport."""
    plan = run.plan
    async with Side(run, upstream) as side, side.http() as http:
        gateway = Gateway(http)
        assert side.direct is not None
        await bounded(side.warm_up(gateway), "warm-up")
        pair = ((side.direct, side.errors_direct), (gateway, side.errors_gateway))
        await run.reset_fake()
        d, g = await paired(pair, TTFB_PROMPT, plan.other_ttfb, "time to first byte")
        rows = [Row.of("ttfb", f"[{upstream}] time to first byte, c=1, median", "ms", _ms(d), _ms(g))]
        d, g = await paired(pair, TTFT_PROMPT, plan.other_ttft, "time to first token")
        rows.append(Row.of("ttft", f"[{upstream}] time to first token, c=1, median", "ms", _ms(d), _ms(g)))
        side.report_errors()
        errors = {"direct": side.errors_direct.count, "gateway": side.errors_gateway.count}
    return {"upstream": upstream, "rows": [asdict(r) for r in rows], "errors": errors}


async def _setup(direct: DirectWs, count: int, errors: Errors) -> dict[str, float]:
    """The direct client's WebSocket set-up per turn: the handshake, then session.create until ready."""
    handshakes: list[float] = []
    ready: list[float] = []

    async def run() -> None:
        for _ in range(count):
            try:
                opened, session = await direct.setup()
            except Exception as exc:
                errors.add(exc)
                continue
            handshakes.append(opened)
            ready.append(session)

    await bounded(run(), "WebSocket set-up")
    return {"handshake_ms": _ms(handshakes), "ready_ms": _ms(ready)}


# ------------------------------------------------------------------------------------ the report


def _figure(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "—"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.0f} {unit}"


def _judged(row: dict[str, Any]) -> str:
    value = row["value"]
    if math.isnan(value):
        return "—"
    if row["kind"] == "added":
        return f"{value:+.2f} ms" if abs(value) < 10 else f"{value:+.0f} ms"
    if row["kind"] in ("ratio_min", "ratio_max"):
        return f"{value:.2f}×"
    return _figure(value, row["unit"])


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| measure | direct | gateway | gateway's cost | target | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {_figure(r['direct'], r['unit'])} | {_figure(r['gateway'], r['unit'])} "
            f"| {_judged(r)} | {r['target']} | {'yes' if r['met'] else '**no**'} |"
        )
    return "\n".join(lines)


def _notes(main: dict[str, Any]) -> list[str]:
    notes = []
    if "ws_setup" in main:
        s = main["ws_setup"]
        notes.append(
            f"direct WebSocket set-up per turn: handshake {s['handshake_ms']:.2f} ms, "
            f"until the session is ready {s['ready_ms']:.2f} ms (medians)"
        )
    c = main["cpu_ms_per_request"]
    notes.append(
        f"CPU per non-stream request: gateway {c['gateway_ms']:.2f} ms; load generator {c['direct_client_ms']:.2f} ms "
        f"direct, {c['gateway_client_ms']:.2f} ms through the gateway; fake {c['direct_fake_ms']:.2f} / "
        f"{c['gateway_fake_ms']:.2f} ms"
    )
    if "no_spares_added_ms" in main:
        a = main["no_spares_added_ms"]
        notes.append(
            f"with no spare chat sockets (spare_socket_seconds=0, every turn's socket opened after its request): "
            f"first byte {a['ttfb']:+.2f} ms, first token {a['ttft']:+.2f} ms (not judged)"
        )
    if "aiohttp_client_added_ms" in main:
        a = main["aiohttp_client_added_ms"]
        notes.append(
            f"through aiohttp's client instead of the bench's own: first byte +{a['ttfb']:.2f} ms, first token "
            f"+{a['ttft']:.2f} ms (the client's own cost included; not judged)"
        )
    if "memory_all_processes_mib" in main:
        notes.append(f"gateway peak memory, all its processes together: {main['memory_all_processes_mib']:.0f} MiB")
    return notes


# ------------------------------------------------------------------------------------ the run


def bench_workers() -> int:
    """The gateway's workers unless told: one per usable CPU, less the one the fake grok.com keeps busy."""
    return max(1, usable_cpus() - 1)


async def main(
    streams: int = 500,
    quick: bool = False,
    workers: int | None = None,
    chat: str = "ws",
    upstream: str = "both",
    json_path: Path | None = None,
    server: str = "",
) -> None:
    """Every row over ``upstream`` aiohttp (or the only one asked for), the c=1 rows over curl_cffi too
    (``both``, when it is installed); ``quick`` uses few samples (a smoke run, not figures to quote)."""
    if chat not in CHATS:
        raise ValueError("chat transport must be ws or rest")
    if upstream not in (*UPSTREAMS, "both"):
        raise ValueError("upstream transport must be aiohttp, curl_cffi or both")
    if not 1 <= streams <= MAX_STREAMS:
        raise ValueError(f"streams must be between 1 and {MAX_STREAMS}")
    workers = workers or bench_workers()
    if not 1 <= workers <= 64:
        raise ValueError("workers must be between 1 and 64")
    server = http_server(server or BootConfig.http_server)
    from ..grok.browser import available as curl_available

    if upstream == "curl_cffi" and not curl_available():
        raise ValueError("the curl_cffi transport needs curl_cffi: pip install 'grok2api[browser]'")
    main_upstream = "curl_cffi" if upstream == "curl_cffi" else "aiohttp"
    others = ["curl_cffi"] if upstream == "both" and curl_available() else []
    plan = Plan.quick(streams) if quick else Plan(many=streams)

    started = time.perf_counter()
    load_before = procs.load_average()
    work = Path(tempfile.mkdtemp(prefix="grok2api-bench-"))
    fake_port = procs.free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GROK2API_")},
        "STORAGE_MODE": "file",
        "GROK2API_UPSTREAM_URL": fake_url,
        "GROK2API_ASSETS_URL": f"{fake_url}/assets",
        "GROK2API_ADMIN_PASSWORD": "bench-only-password",
        "GROK2API_LOG_LEVEL": "WARNING",
        "GROK2API_HTTP_SERVER": server,
    }
    accounts = max(MIN_ACCOUNTS, math.ceil(2 * (1 + len(others)) * plan.turns() / TURNS_PER_ACCOUNT))
    tokens = [f"heavy-bench-{i}" for i in range(accounts)]
    args = [sys.executable, "-m", "grok2api.testing.fake_grok", "--port", str(fake_port)]
    fake = procs.spawn(args, env, work / "fake.log")
    loop = worker_class("auto")
    failed = False
    try:
        await procs.wait_http(f"{fake_url}/__fake/accounts", fake)
        run = Run(plan, tokens, fake_url, fake, work, env, workers, chat)
        print(
            f"grok2api bench: gateway with {workers} worker(s), {loop} event loop, {server} HTTP server, SQLite store, "
            f"{chat} chat; "
            f"fake grok.com on loopback with {accounts} accounts; {os.cpu_count()} CPUs"
        )
        result_main = await measure_main(run, main_upstream)
        results = [result_main] + [await measure_latency(run, other) for other in others]
        rows = [r for res in results for r in res["rows"]]
        admin_ms = None
        if not quick:
            from ..admin.accounts_bench import bench_accounts_page

            admin_ms = await _admin_page(bench_accounts_page, work) * 1000
        errors = sum(res["errors"]["direct"] + res["errors"]["gateway"] for res in results)
        failed = errors > 0
        print(table(rows))
        for note in _notes(result_main):
            print(f"  {note}")
        if admin_ms is not None:
            print(f"  admin accounts page with 10 000 accounts: {admin_ms:.1f} ms per render")
        total = time.perf_counter() - started
        print(f"  failed requests: {errors}; total bench time {total:.1f} s")
        summary = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {**procs.machine(), "load_before": load_before, "load_after": procs.load_average()},
            "quick": quick,
            "workers": workers,
            "event_loop": loop,
            "http_server": server,
            "chat_transport": chat,
            "accounts": accounts,
            "rows": rows,
            "all_met": all(r["met"] for r in rows),
            "upstreams": results,
            "admin_accounts_page_ms": admin_ms,
            "load_generator_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "total_seconds": total,
        }
        encoded = _ENC.encode(summary)
        if json_path is not None:
            json_path.write_bytes(msgspec.json.format(encoded) + b"\n")
        print("result " + encoded.decode())
    except BaseException:
        failed = True
        raise
    finally:
        procs.stop([fake])
        if failed:
            print(f"  logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        raise SystemExit(1)


async def _admin_page(bench: Callable[..., Awaitable[float]], work: Path) -> float:
    from ..services import Services

    svc = Services(BootConfig(data_dir=work / "admin-bench", environ={"GROK2API_LOG_LEVEL": "WARNING"}))
    await svc.store.open()
    try:
        return await bench(svc, 10_000)
    finally:
        await svc.http.close()
        await svc.store.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=int, default=500, help="streams of the many-streams rows (default 500)")
    parser.add_argument(
        "--workers",
        type=int,
        help="gateway worker processes (default: one per usable CPU but the one the fake keeps busy)",
    )
    parser.add_argument("--chat", choices=CHATS, default="ws", help="chat transport to grok.com (default ws)")
    parser.add_argument(
        "--upstream",
        choices=[*UPSTREAMS, "both"],
        default="both",
        help="HTTP/WebSocket transport: all rows over aiohttp, the c=1 rows over curl_cffi too (default both)",
    )
    parser.add_argument(
        "--http-server",
        choices=HTTP_SERVERS,
        help="the gateway's HTTP server (default: GROK2API_HTTP_SERVER's default)",
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the result to this JSON file")
    parser.add_argument("--quick", action="store_true", help="few samples: check that the bench runs")


def run_from(args: argparse.Namespace) -> None:
    coro = main(
        streams=args.streams,
        quick=args.quick,
        workers=args.workers,
        chat=args.chat,
        upstream=args.upstream,
        json_path=args.json_path,
        server=args.http_server or "",
    )
    # The load generator runs on the loop the gateway runs on, so neither side gets a faster client.
    with asyncio.Runner(loop_factory=loop_factory(worker_class("auto"))) as runner:
        runner.run(coro)


def cli(argv: Sequence[str] | None = None) -> None:
    """``python -m grok2api.cli.bench [options]`` (the same as ``grok2api bench``)."""
    parser = argparse.ArgumentParser(prog="grok2api bench", description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_arguments(parser)
    run_from(parser.parse_args(argv))


if __name__ == "__main__":
    cli()

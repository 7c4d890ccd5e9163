"""``grok2api bench``: the gateway against the fake grok.com on loopback, each figure measured against
a direct call to the fake, so the figures are the gateway's own cost.

Both chat transports are measured (``ws``: the mgw WebSocket, one socket per turn; ``rest``: the
``modeId`` body to ``conversations/new``). The direct client speaks to the fake exactly as the
gateway does for that transport, with the gateway's own protocol code (``stream_mgw`` over an
``AiohttpTransport`` after one ``/api/auth/session`` per account, or ``GrokClient.stream_chat``
with the mode-era body), so both sides pay the same set-up and parsing and the difference is the
gateway's.

The fake and one gateway per transport run as separate processes (as in production); the load
generator is this process. Everything binds to 127.0.0.1, every loop is bounded in count and every
phase in time.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
import msgspec

from ..grok.chat import mode_chat_payload
from ..grok.client import GrokClient
from ..grok.events import End, ErrorEvent, Event, Text
from ..grok.headers import ws_headers
from ..grok.mgw import mgw_url, session_create, stream_mgw
from ..grok.mgw_events import MgwParser
from ..grok.transport import AiohttpTransport
from ..settings import RuntimeSettings

TransportName = Literal["ws", "rest"]
TRANSPORTS: tuple[TransportName, ...] = ("ws", "rest")
MODE, MODEL = "fast", "grok-fast"  # the mode the gateway's grok-fast asks for
MIN_ACCOUNTS = 40
TURNS_PER_ACCOUNT = 300  # the fake gives a heavy account 400 fast queries per window: keep a margin
TTFT_SAMPLES = 100
SETUP_SAMPLES = 100
THROUGHPUT_REQUESTS = 480
THROUGHPUT_CONCURRENCY = 16
STREAM_TOKENS = 40
STREAM_TOKEN_DELAY = 0.01
MAX_STREAMS = 2000
PHASE_SECONDS = 120.0  # no phase of the run may take longer
ADDED_TTFT_BUDGET = 0.002  # the gateway's added time to first token over ws, at most (issue: 2 ms)
TTFT_PROMPT = "[[tokens:5]] hi"
THROUGHPUT_PROMPT = "[[tokens:20]] throughput"
STREAM_PROMPT = f"[[tokens:{STREAM_TOKENS}]] [[fault:slow-tokens:{STREAM_TOKEN_DELAY}]] stream"
WARM_PROMPT = "[[tokens:3]] [[fault:slow-tokens:0.2]] warm up"  # slow, so a burst of them uses every account
_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder()

OnToken = Callable[[], None]


class BenchError(Exception):
    """A request that did not end in a complete answer."""


# ------------------------------------------------------------------------------------ the targets


class Target(Protocol):
    async def stream(self, message: str, on_token: OnToken) -> None:
        """One streamed turn; ``on_token`` for each piece of answer text. BenchError unless complete."""

    async def full(self, message: str) -> None:
        """One turn read to its end."""


class _Tokens:
    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return self.tokens[self._n % len(self.tokens)]


async def _drain(events: AsyncGenerator[list[Event], None], on_token: OnToken) -> None:
    """Read one turn's events as the gateway would: answer text, an error, the end."""
    ended = False
    try:
        async for batch in events:
            for event in batch:
                if isinstance(event, Text):
                    if event.text:
                        on_token()
                elif isinstance(event, ErrorEvent):
                    raise BenchError(f"grok.com error: {event.message[:80]}")
                elif isinstance(event, End):
                    ended = True
    finally:
        await events.aclose()
    if not ended:
        raise BenchError("the answer ended without its final event")


class DirectWs:
    """The fake over the chat WebSocket, as the gateway reaches it: each account's user id from
    ``/api/auth/session`` once, then per turn a socket, ``session.create``, the message and
    ``response.create``, read until ``response.done``."""

    def __init__(self, transport: AiohttpTransport, settings: RuntimeSettings, tokens: Sequence[str]) -> None:
        self.transport, self.settings, self.tokens = transport, settings, _Tokens(tokens)
        self.user_ids: dict[str, str] = {}

    async def warm_up(self) -> None:
        client = GrokClient(self.transport)
        ids = await asyncio.gather(*(client.auth_session(t, self.settings) for t in self.tokens.tokens))
        self.user_ids = dict(zip(self.tokens.tokens, ids, strict=True))

    def _turn(self, message: str) -> AsyncGenerator[list[Event], None]:
        token = self.tokens.next()
        return stream_mgw(self.transport, token, self.user_ids[token], MODE, message, (), self.settings)

    async def stream(self, message: str, on_token: OnToken) -> None:
        await _drain(self._turn(message), on_token)

    async def full(self, message: str) -> None:
        await _drain(self._turn(message), _ignore)

    async def setup(self) -> tuple[float, float]:
        """One turn's set-up alone: (handshake, handshake + session.create until the session is ready)."""
        token = self.tokens.next()
        user_id = self.user_ids[token]
        start = time.perf_counter()
        ws = await self.transport.websocket(
            mgw_url(self.settings.upstream_url, user_id), ws_headers(token, user_id, self.settings), ""
        )
        try:
            opened = time.perf_counter()
            await ws.send_json(session_create(MODE, self.settings))
            parser = MgwParser()
            while not parser.ready:
                frame = await ws.receive_text()
                if frame is None:
                    raise BenchError("the fake closed the socket before the session was ready")
                parser.feed(frame)
                if parser.done:
                    raise BenchError(f"the session did not open: {parser.failure}")
            ready = time.perf_counter()
        finally:
            await ws.close()
        return opened - start, ready - start


class DirectRest:
    """The fake over REST, as the gateway reaches it: the mode-era body to ``conversations/new``."""

    def __init__(self, transport: AiohttpTransport, settings: RuntimeSettings, tokens: Sequence[str]) -> None:
        self.client, self.settings, self.tokens = GrokClient(transport), settings, _Tokens(tokens)

    async def warm_up(self) -> None:
        await self.full(TTFT_PROMPT)

    def _turn(self, message: str) -> AsyncGenerator[list[Event], None]:
        payload = mode_chat_payload(MODE, message, [], self.settings)
        return self.client.stream_chat(self.tokens.next(), payload, self.settings)

    async def stream(self, message: str, on_token: OnToken) -> None:
        await _drain(self._turn(message), on_token)

    async def full(self, message: str) -> None:
        await _drain(self._turn(message), _ignore)


class Gateway:
    """The gateway's ``/v1/chat/completions``, streamed (SSE) or not."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, f"{url}/v1/chat/completions"

    def _post(self, message: str, stream: bool) -> Any:
        body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": message}]}
        return self.http.post(self.url, data=_ENC.encode(body), headers={"Content-Type": "application/json"})

    async def stream(self, message: str, on_token: OnToken) -> None:
        tokens, done = 0, False
        async with self._post(message, True) as resp:
            if resp.status != 200:
                raise BenchError(f"gateway answered {resp.status}: {(await resp.text())[:80]}")
            async for line in resp.content:
                if line.startswith(b'data: {"error"'):
                    raise BenchError(f"gateway error: {line[6:86].decode(errors='replace')}")
                if line.startswith(b"data: [DONE]"):
                    done = True
                elif line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
                    tokens += 1
                    on_token()
        if not done or not tokens:
            raise BenchError("the gateway's stream ended early")

    async def full(self, message: str) -> None:
        async with self._post(message, False) as resp:
            raw = await resp.read()
        if resp.status != 200:
            raise BenchError(f"gateway answered {resp.status}: {raw[:80].decode(errors='replace')}")
        answer = _DEC.decode(raw)
        if not answer["choices"][0]["message"]["content"]:
            raise BenchError("the gateway answered with no text")


def _ignore() -> None:
    pass


# ------------------------------------------------------------------------------------ measurements


@dataclass
class Errors:
    count: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, exc: BaseException) -> None:
        self.count += 1
        self.kinds[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1


def _pct(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Latency:
    median_ms: float
    p90_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        median = statistics.median(seconds) if seconds else math.nan
        return cls(median * 1000, _pct(seconds, 90) * 1000, len(seconds))


async def _bounded(work: Awaitable[Any], what: str) -> None:
    try:
        async with asyncio.timeout(PHASE_SECONDS):
            await work
    except TimeoutError:
        raise BenchError(f"{what} took longer than {PHASE_SECONDS:.0f} s") from None


def _stamp(stamps: list[float]) -> None:
    stamps.append(time.perf_counter())


async def _first_token(target: Target, errors: Errors) -> float | None:
    stamps: list[float] = []
    start = time.perf_counter()
    try:
        await target.stream(TTFT_PROMPT, partial(_stamp, stamps))
    except Exception as exc:
        errors.add(exc)
        return None
    if not stamps:
        errors.add(BenchError("an answer without text"))
        return None
    return stamps[0] - start


async def _ttft(
    direct: Target, gateway: Target, count: int, err_direct: Errors, err_gateway: Errors
) -> tuple[Latency, Latency]:
    """Time to first token at c=1, direct and gateway samples interleaved (the order swapping each
    round), so a noisy neighbour on the machine weighs on both sides alike."""
    samples: dict[int, list[float]] = {0: [], 1: []}
    sides: tuple[tuple[Target, Errors], ...] = ((direct, err_direct), (gateway, err_gateway))

    async def run() -> None:
        for i in range(count):
            for side in (0, 1) if i % 2 == 0 else (1, 0):
                target, errors = sides[side]
                sample = await _first_token(target, errors)
                if sample is not None:
                    samples[side].append(sample)

    await _bounded(run(), "time to first token")
    return Latency.of(samples[0]), Latency.of(samples[1])


async def _setup(direct: DirectWs, count: int, errors: Errors) -> tuple[Latency, Latency]:
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

    await _bounded(run(), "WebSocket set-up")
    return Latency.of(handshakes), Latency.of(ready)


async def _throughput(target: Target, total: int, errors: Errors) -> float:
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            try:
                await target.full(THROUGHPUT_PROMPT)
            except Exception as exc:
                errors.add(exc)

    failed_before = errors.count
    start = time.perf_counter()
    await _bounded(asyncio.gather(*(worker() for _ in range(THROUGHPUT_CONCURRENCY))), "throughput")
    return (total - (errors.count - failed_before)) / (time.perf_counter() - start)


@dataclass
class Streams:
    wall_s: float
    p99_gap_ms: float
    ttft_p50_ms: float
    chunks: int


async def _many_streams(target: Target, n: int, errors: Errors) -> Streams:
    gaps: list[float] = []
    firsts: list[float] = []
    start = time.perf_counter()

    async def one() -> None:
        last = [0.0]

        def tick() -> None:
            now = time.perf_counter()
            if last[0]:
                gaps.append(now - last[0])
            else:
                firsts.append(now - start)
            last[0] = now

        try:
            await target.stream(STREAM_PROMPT, tick)
        except Exception as exc:
            errors.add(exc)

    await _bounded(asyncio.gather(*(one() for _ in range(n))), f"{n} concurrent streams")
    wall = time.perf_counter() - start
    return Streams(wall, _pct(gaps, 99) * 1000, _pct(firsts, 50) * 1000, len(gaps) + len(firsts))


# ------------------------------------------------------------------------------------ processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the process serving {url} exited with {proc.returncode}")
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise BenchError(f"{url} did not come up")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def _peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident memory (Linux), else None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# ------------------------------------------------------------------------------------ one transport


@dataclass
class TransportResult:
    transport: str
    ttft_direct: Latency
    ttft_gateway: Latency
    added_ttft_median_ms: float
    added_ttft_p90_ms: float
    rps_direct: float
    rps_gateway: float
    streams: int
    streams_direct: Streams
    streams_gateway: Streams
    errors_direct: int
    errors_gateway: int
    gateway_peak_mib: float | None
    ws_handshake: Latency | None = None
    ws_setup: Latency | None = None


@dataclass
class Plan:
    ttft: int
    setup: int
    requests: int
    streams: int


def _accounts_for(plan: Plan, transports: int) -> int:
    turns_per_side = plan.ttft + plan.requests + plan.streams + MIN_ACCOUNTS + 8
    return max(MIN_ACCOUNTS, math.ceil(2 * transports * turns_per_side / TURNS_PER_ACCOUNT))


async def _measure(
    transport: TransportName, plan: Plan, tokens: list[str], fake_url: str, work: Path, base_env: dict[str, str]
) -> TransportResult:
    data = work / transport
    env = {**base_env, "GROK2API_DATA_DIR": str(data), "GROK2API_CHAT_TRANSPORT": transport}
    py = sys.executable
    subprocess.run(
        [py, "-m", "grok2api", "accounts", "add", "--tier", "heavy", *tokens],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = _free_port()
    gw_url = f"http://127.0.0.1:{port}"
    gw = _spawn([py, "-m", "grok2api", "serve", "--bind", f"127.0.0.1:{port}"], env, work / f"gateway-{transport}.log")
    upstream = AiohttpTransport()
    try:
        await _wait_http(f"{gw_url}/healthz", gw)
        settings = RuntimeSettings(upstream_url=fake_url, assets_url=f"{fake_url}/assets", chat_transport=transport)
        direct: DirectWs | DirectRest = (
            DirectWs(upstream, settings, tokens) if transport == "ws" else DirectRest(upstream, settings, tokens)
        )
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=PHASE_SECONDS)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            gateway = Gateway(http, gw_url)
            err_direct, err_gw = Errors(), Errors()
            await _bounded(_warm_up(direct, gateway, len(tokens)), "warm-up")
            handshake = setup = None
            if isinstance(direct, DirectWs):
                handshake, setup = await _setup(direct, plan.setup, err_direct)
            ttft_direct, ttft_gw = await _ttft(direct, gateway, plan.ttft, err_direct, err_gw)
            rps_direct = await _throughput(direct, plan.requests, err_direct)
            rps_gw = await _throughput(gateway, plan.requests, err_gw)
            streams_direct = await _many_streams(direct, plan.streams, err_direct)
            streams_gw = await _many_streams(gateway, plan.streams, err_gw)
        for side, errors in (("direct", err_direct), ("gateway", err_gw)):
            for kind, count in errors.kinds.most_common(3):
                print(f"  [{transport}] {side} error x{count}: {kind}")
        return TransportResult(
            transport=transport,
            ttft_direct=ttft_direct,
            ttft_gateway=ttft_gw,
            added_ttft_median_ms=ttft_gw.median_ms - ttft_direct.median_ms,
            added_ttft_p90_ms=ttft_gw.p90_ms - ttft_direct.p90_ms,
            rps_direct=rps_direct,
            rps_gateway=rps_gw,
            streams=plan.streams,
            streams_direct=streams_direct,
            streams_gateway=streams_gw,
            errors_direct=err_direct.count,
            errors_gateway=err_gw.count,
            gateway_peak_mib=_peak_rss_mib(gw.pid),
            ws_handshake=handshake,
            ws_setup=setup,
        )
    finally:
        await upstream.close()
        _stop([gw])


async def _warm_up(direct: DirectWs | DirectRest, gateway: Gateway, accounts: int) -> None:
    """Connections up, and every account known to the gateway (its user id and windows learned), so
    no timed turn pays a first-use cost that the direct client paid in its own warm-up."""
    await direct.warm_up()
    await asyncio.gather(*(gateway.full(WARM_PROMPT) for _ in range(accounts)))
    for _ in range(3):
        for target in (direct, gateway):
            await target.full(TTFT_PROMPT)
            await target.stream(TTFT_PROMPT, _ignore)
    await asyncio.sleep(1.0)  # the gateway learns the accounts' windows in the background after answering


def _report(r: TransportResult) -> None:
    t = f"[{r.transport}]"
    if r.ws_handshake is not None and r.ws_setup is not None:
        print(
            f"  {t} WebSocket set-up per turn, direct: handshake median {r.ws_handshake.median_ms:.2f} ms "
            f"p90 {r.ws_handshake.p90_ms:.2f} ms; handshake + session.create until ready median "
            f"{r.ws_setup.median_ms:.2f} ms p90 {r.ws_setup.p90_ms:.2f} ms"
        )
    within = ""
    if r.transport == "ws":
        budget = ADDED_TTFT_BUDGET * 1000
        within = f" (within {budget:.0f} ms: {'yes' if r.added_ttft_median_ms <= budget else 'no'})"
    print(
        f"  {t} time to first token, c=1: direct median {r.ttft_direct.median_ms:.2f} ms "
        f"p90 {r.ttft_direct.p90_ms:.2f} ms; gateway median {r.ttft_gateway.median_ms:.2f} ms "
        f"p90 {r.ttft_gateway.p90_ms:.2f} ms; added median {r.added_ttft_median_ms:.2f} ms "
        f"p90 {r.added_ttft_p90_ms:.2f} ms{within}"
    )
    ratio = r.rps_gateway / r.rps_direct if r.rps_direct else math.nan
    print(
        f"  {t} non-stream throughput, c={THROUGHPUT_CONCURRENCY}: direct {r.rps_direct:.0f} req/s, "
        f"gateway {r.rps_gateway:.0f} req/s, ratio {ratio:.2f}"
    )
    d, g = r.streams_direct, r.streams_gateway
    print(
        f"  {t} {r.streams} concurrent streams x {STREAM_TOKENS} tokens @ {STREAM_TOKEN_DELAY * 1000:.0f} ms: "
        f"direct wall {d.wall_s:.2f} s, first token p50 {d.ttft_p50_ms:.0f} ms, p99 gap {d.p99_gap_ms:.1f} ms; "
        f"gateway wall {g.wall_s:.2f} s, first token p50 {g.ttft_p50_ms:.0f} ms, p99 gap {g.p99_gap_ms:.1f} ms"
    )
    peak = f"{r.gateway_peak_mib:.0f} MiB" if r.gateway_peak_mib is not None else "unknown"
    print(f"  {t} gateway peak memory {peak}; errors direct {r.errors_direct} gateway {r.errors_gateway}")


# ------------------------------------------------------------------------------------ the run


async def main(streams: int = 500, quick: bool = False, transport: str = "both") -> None:
    """Run every measurement once per transport (``ws``, ``rest`` or ``both``); ``quick`` uses few
    samples (a smoke run, not figures to quote). Exits 1 if any request failed."""
    if transport not in (*TRANSPORTS, "both"):
        raise ValueError("transport must be ws, rest or both")
    if not 1 <= streams <= MAX_STREAMS:
        raise ValueError(f"streams must be between 1 and {MAX_STREAMS}")
    transports = [t for t in TRANSPORTS if transport in (t, "both")]
    plan = Plan(5, 5, 48, streams) if quick else Plan(TTFT_SAMPLES, SETUP_SAMPLES, THROUGHPUT_REQUESTS, streams)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="grok2api-bench-"))
    fake_port = _free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GROK2API_")},
        "STORAGE_MODE": "file",
        "GROK2API_UPSTREAM_URL": fake_url,
        "GROK2API_ASSETS_URL": f"{fake_url}/assets",
        "GROK2API_ADMIN_PASSWORD": "bench-only-password",
        "GROK2API_LOG_LEVEL": "WARNING",
    }
    accounts = _accounts_for(plan, len(transports))
    tokens = [f"heavy-bench-{i}" for i in range(accounts)]
    fake = _spawn(
        [sys.executable, "-m", "grok2api.testing.fake_grok", "--port", str(fake_port)], env, work / "fake.log"
    )
    results: list[TransportResult] = []
    failed = False
    try:
        await _wait_http(f"{fake_url}/__fake/accounts", fake)
        print(f"grok2api bench (fake grok.com on loopback, {accounts} accounts, SQLite store, {os.cpu_count()} CPUs)")
        for name in transports:
            result = await _measure(name, plan, tokens, fake_url, work, env)
            _report(result)
            results.append(result)
            failed = failed or bool(result.errors_direct or result.errors_gateway)
        if not quick:
            from ..admin.accounts_bench import bench_accounts_page

            per_page = await _admin_page(bench_accounts_page, work)
            print(f"  admin accounts page with 10 000 accounts: {per_page * 1000:.1f} ms per render")
        print(f"  total bench time {time.perf_counter() - started:.1f} s")
        summary = {"quick": quick, "accounts": accounts, "transports": [asdict(r) for r in results]}
        print("result " + _ENC.encode(summary).decode())
    except BaseException:
        failed = True
        raise
    finally:
        _stop([fake])
        if failed:
            print(f"  logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        raise SystemExit(1)


async def _admin_page(bench: Callable[..., Awaitable[float]], work: Path) -> float:
    from ..config import BootConfig
    from ..services import Services

    svc = Services(BootConfig(data_dir=work / "admin-bench", environ={"GROK2API_LOG_LEVEL": "WARNING"}))
    await svc.store.open()
    try:
        return await bench(svc, 10_000)
    finally:
        await svc.http.close()
        await svc.store.close()


def cli(argv: Sequence[str] | None = None) -> None:
    """``python -m grok2api.cli.bench [--transport ws|rest|both] [--streams N] [--quick]``."""
    parser = argparse.ArgumentParser(prog="grok2api bench", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="few samples: check that the bench runs")
    parser.add_argument("--transport", choices=[*TRANSPORTS, "both"], default="both")
    args = parser.parse_args(argv)
    asyncio.run(main(streams=args.streams, quick=args.quick, transport=args.transport))


if __name__ == "__main__":
    cli()

"""``grok2api bench``: the gateway against the fake grok.com on loopback, each measured against a
direct call to the fake, so the figures are the gateway's own cost.

The fake and the gateway run as separate processes (as in production); the load generator is this
process. Everything binds to 127.0.0.1 and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

BENCH_ACCOUNTS = 40
TTFT_SAMPLES = 40
THROUGHPUT_REQUESTS = 480
THROUGHPUT_CONCURRENCY = 16
STREAM_TOKENS = 40
STREAM_TOKEN_DELAY = 0.01
_ENC = msgspec.json.Encoder()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _direct_payload(message: str) -> dict[str, Any]:
    return {
        "temporary": True,
        "modelName": "grok-3",
        "modelMode": "MODEL_MODE_FAST",
        "message": message,
        "fileAttachments": [],
    }


def _direct_headers(token: str) -> dict[str, str]:
    return {"Cookie": f"sso={token}", "x-statsig-id": "ZTpiZW5jaA==", "Content-Type": "application/json"}


class Targets:
    def __init__(self, http: aiohttp.ClientSession, fake: str, gateway: str) -> None:
        self.http, self.fake, self.gateway = http, fake, gateway
        self._n = 0

    def _token(self) -> str:
        self._n += 1
        return f"heavy-bench-{self._n % BENCH_ACCOUNTS}"

    async def direct_stream(self, message: str, on_token: Callable[[], None]) -> None:
        url = f"{self.fake}/rest/app-chat/conversations/new"
        body = _ENC.encode(_direct_payload(message))
        async with self.http.post(url, data=body, headers=_direct_headers(self._token())) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if b'"token"' in line:
                    on_token()

    async def gateway_stream(self, message: str, on_token: Callable[[], None]) -> None:
        body = _ENC.encode({"model": "grok-3-fast", "stream": True, "messages": [{"role": "user", "content": message}]})
        async with self.http.post(
            f"{self.gateway}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
                    on_token()

    async def direct_full(self, message: str) -> None:
        await self.direct_stream(message, lambda: None)

    async def gateway_full(self, message: str) -> None:
        body = _ENC.encode({"model": "grok-3-fast", "messages": [{"role": "user", "content": message}]})
        async with self.http.post(
            f"{self.gateway}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            resp.raise_for_status()
            await resp.read()


def _stamp_first(stamps: list[float]) -> None:
    if not stamps:
        stamps.append(time.perf_counter())


async def _ttft(run: Callable[[str, Callable[[], None]], Awaitable[None]], count: int) -> float:
    samples: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        stamps: list[float] = []
        await run("[[tokens:5]] hi", partial(_stamp_first, stamps))
        samples.append(stamps[0] - start)
    return statistics.median(samples)


async def _throughput(run: Callable[[str], Awaitable[None]], total: int) -> float:
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            await run("[[tokens:20]] throughput")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(THROUGHPUT_CONCURRENCY)))
    return total / (time.perf_counter() - start)


async def _many_streams(run: Callable[[str, Callable[[], None]], Awaitable[None]], n: int) -> dict[str, float]:
    gaps: list[float] = []
    errors = 0
    kinds: Counter[str] = Counter()

    async def one() -> None:
        nonlocal errors
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        try:
            await run(f"[[tokens:{STREAM_TOKENS}]] [[fault:slow-tokens:{STREAM_TOKEN_DELAY}]] stream", tick)
        except Exception as exc:
            errors += 1
            kinds[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - start
    for kind, count in kinds.most_common(3):
        print(f"    error x{count}: {kind}")
    gaps.sort()
    p99 = gaps[int(len(gaps) * 0.99)] if gaps else float("nan")
    return {"wall": wall, "p99_gap": p99, "errors": float(errors), "chunks": float(len(gaps))}


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


async def main(streams: int = 500, quick: bool = False) -> None:
    """Run every measurement once; ``quick`` uses few samples (a smoke run, not figures to quote)."""
    ttft_samples, requests = (5, 48) if quick else (TTFT_SAMPLES, THROUGHPUT_REQUESTS)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="grok2api-bench-"))
    fake_port, gw_port = _free_port(), _free_port()
    fake_url, gw_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{gw_port}"
    env = {
        **os.environ,
        "GROK2API_DATA_DIR": str(work / "data"),
        "STORAGE_MODE": "file",
        "GROK2API_UPSTREAM_URL": fake_url,
        "GROK2API_ASSETS_URL": f"{fake_url}/assets",
        "GROK2API_ADMIN_PASSWORD": "bench-only-password",
        "GROK2API_LOG_LEVEL": "WARNING",
    }
    env.pop("GROK2API_API_KEY", None)
    py = sys.executable
    procs = [_spawn([py, "-m", "grok2api.testing.fake_grok", "--port", str(fake_port)], env, work / "fake.log")]
    try:
        tokens = [f"heavy-bench-{i}" for i in range(BENCH_ACCOUNTS)]
        subprocess.run(
            [py, "-m", "grok2api", "accounts", "add", *tokens], env=env, check=True, stdout=subprocess.DEVNULL
        )
        procs.append(_spawn([py, "-m", "grok2api", "serve", "--bind", f"127.0.0.1:{gw_port}"], env, work / "gw.log"))
        await _wait_http(f"{fake_url}/__fake/accounts")
        await _wait_http(f"{gw_url}/healthz")
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            t = Targets(http, fake_url, gw_url)
            await t.gateway_full("warm up")
            ttft_direct = await _ttft(t.direct_stream, ttft_samples)
            ttft_gw = await _ttft(t.gateway_stream, ttft_samples)
            rps_direct = await _throughput(t.direct_full, requests)
            rps_gw = await _throughput(t.gateway_full, requests)
            direct = await _many_streams(t.direct_stream, streams)
            gw = await _many_streams(t.gateway_stream, streams)
        print(f"grok2api bench (fake grok.com on loopback, {BENCH_ACCOUNTS} accounts, SQLite store)")
        print(
            f"  time to first token, c=1 median: direct {ttft_direct * 1000:.2f} ms, gateway "
            f"{ttft_gw * 1000:.2f} ms, added {(ttft_gw - ttft_direct) * 1000:.2f} ms"
        )
        print(
            f"  non-stream throughput, c={THROUGHPUT_CONCURRENCY}: direct {rps_direct:.0f} req/s, gateway "
            f"{rps_gw:.0f} req/s, ratio {rps_gw / rps_direct:.2f}"
        )
        print(
            f"  {streams} concurrent streams x {STREAM_TOKENS} tokens @ {STREAM_TOKEN_DELAY * 1000:.0f} ms: "
            f"direct wall {direct['wall']:.2f} s p99 gap {direct['p99_gap'] * 1000:.1f} ms; gateway wall "
            f"{gw['wall']:.2f} s p99 gap {gw['p99_gap'] * 1000:.1f} ms; errors {int(gw['errors'])}"
        )
        if not quick:
            from ..admin.accounts_bench import bench_accounts_page

            per_page = await _admin_page(bench_accounts_page, work)
            print(f"  admin accounts page with 10 000 accounts: {per_page * 1000:.1f} ms per render")
        print(f"  total bench time {time.perf_counter() - started:.1f} s")
        if gw["errors"]:
            raise SystemExit(1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


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

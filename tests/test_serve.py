"""The serve command: slow and abusive clients against one worker (in this process, with short timeouts), and a
graceful shutdown on a real SIGTERM to a real server process."""

from __future__ import annotations

import asyncio
import email.utils
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import pytest
from hypercorn.config import Sockets

from grok2api.app import create_app
from grok2api.config import BootConfig
from grok2api.http1 import ConnectionLimit, http_date
from grok2api.serve import hypercorn_config, serve_worker
from grok2api.services import Services
from grok2api.store import make_store
from grok2api.store.base import NewAccount
from grok2api.testing.fake_grok import FakeGrok

from harness import ADMIN_PASSWORD, sse_frames

REPO = Path(__file__).resolve().parent.parent
CHAT = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "[[tokens:4]] hello"}]}


@dataclass
class Worker:
    url: str
    port: int
    services: Services
    limit: ConnectionLimit


@asynccontextmanager
async def worker(tmp_path: Path, fake: FakeGrok, **env: str) -> AsyncIterator[Worker]:
    """One worker as ``grok2api serve`` runs it (hypercorn config, connection cap, drain), in this process."""
    boot = BootConfig.from_env(
        {
            "GROK2API_DATA_DIR": str(tmp_path / "data"),
            "GROK2API_UPSTREAM_URL": fake.base_url,
            "GROK2API_ASSETS_URL": fake.assets_url,
            "GROK2API_UPSTREAM_TRANSPORT": "aiohttp",
            "GROK2API_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **env,
        }
    )
    app = create_app(boot)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    config = hypercorn_config(boot, f"127.0.0.1:{port}")
    config.errorlog = None
    limit = ConnectionLimit(boot.max_connections)
    stopping = asyncio.Event()
    task = asyncio.create_task(serve_worker(app, config, Sockets([], [sock], []), stopping, boot, limit))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                with suppress(aiohttp.ClientError):
                    async with http.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)
        services: Services = app.state.services
        await services.store.add_accounts([NewAccount(token="tok-serve")])
        await services.reload(force=True)
        yield Worker(url, port, services, limit)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 20)


async def _open(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    with suppress(ConnectionError):
        return await asyncio.wait_for(reader.read(), 30)
    return b""


HALF_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
HALF_BODY = b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model":'


@pytest.fixture(params=["hypercorn", "builtin"])
def server(request: pytest.FixtureRequest) -> str:
    """The HTTP server a test's worker runs (``GROK2API_HTTP_SERVER``): each such test runs on both."""
    value: str = request.param
    return value


async def test_half_open_connections_are_closed_while_real_clients_get_answers(
    tmp_path: Path, fake: FakeGrok, server: str
) -> None:
    env = {"GROK2API_HEADER_TIMEOUT_SECONDS": "2", "GROK2API_BODY_TIMEOUT_SECONDS": "2", "GROK2API_HTTP_SERVER": server}
    async with worker(tmp_path, fake, **env) as w:
        heads = [await _open(w.port, HALF_HEAD) for _ in range(200)]
        bodies = [await _open(w.port, HALF_BODY) for _ in range(100)]
        for _ in range(50):
            if w.limit.open >= 300:
                break
            await asyncio.sleep(0.02)
        assert w.limit.open >= 300  # all of them are being held open by the server
        async with aiohttp.ClientSession() as http:

            async def ask() -> int:
                async with http.post(w.url + "/v1/chat/completions", json=CHAT) as resp:
                    await resp.read()
                    return resp.status

            assert await asyncio.gather(*(ask() for _ in range(10))) == [200] * 10
        head_answers = await asyncio.gather(*(_answer(r) for r, _ in heads))
        body_answers = await asyncio.gather(*(_answer(r) for r, _ in bodies))
        # An unfinished head is dropped without a word; a stalled body gets a 408 in the OpenAI shape.
        assert all(a == b"" for a in head_answers)
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in body_answers)
        error = msgspec.json.decode(body_answers[0].split(b"\r\n\r\n", 1)[1])["error"]
        assert error["code"] == "request_timeout"
        for _, writer in heads + bodies:
            writer.close()
        for _ in range(50):
            if w.limit.open == 0:
                break
            await asyncio.sleep(0.05)
        assert w.limit.open == 0  # every connection gave its place back
        assert w.services.traffic.in_flight == 0


async def test_a_client_reading_a_long_quiet_stream_is_never_cut(tmp_path: Path, fake: FakeGrok, server: str) -> None:
    env = {
        "GROK2API_HEADER_TIMEOUT_SECONDS": "0.5",
        "GROK2API_BODY_TIMEOUT_SECONDS": "0.5",
        "GROK2API_HTTP_SERVER": server,
    }
    quiet = {**CHAT, "stream": True, "messages": [{"role": "user", "content": "[[fault:stall-mid:2]] hello"}]}
    async with (
        worker(tmp_path, fake, **env) as w,
        aiohttp.ClientSession() as http,
        http.post(w.url + "/v1/chat/completions", json=quiet) as resp,
    ):
        assert resp.status == 200
        frames = sse_frames(await resp.read())  # 2 s of silence: four times either timeout
    assert frames[-1] == "[DONE]"
    assert msgspec.json.decode(frames[-2])["choices"][0]["finish_reason"] == "stop"


async def test_connections_beyond_the_cap_are_refused_until_places_free_up(
    tmp_path: Path, fake: FakeGrok, server: str
) -> None:
    env = {"GROK2API_HEADER_TIMEOUT_SECONDS": "1", "GROK2API_MAX_CONNECTIONS": "20", "GROK2API_HTTP_SERVER": server}
    async with worker(tmp_path, fake, **env) as w:
        idle = [await _open(w.port, HALF_HEAD) for _ in range(20)]
        for _ in range(50):
            if w.limit.open == 20:
                break
            await asyncio.sleep(0.02)
        reader, writer = await _open(w.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = await _answer(reader)
        writer.close()
        assert refused == b"" or refused.startswith(b"HTTP/1.1 503 ")  # a short 503, or just closed
        assert w.limit.refused >= 1 and w.limit.open <= 20
        await asyncio.gather(*(_answer(r) for r, _ in idle))  # the header timeout frees their places
        for _, idle_writer in idle:
            idle_writer.close()
        async with aiohttp.ClientSession() as http, http.post(w.url + "/v1/chat/completions", json=CHAT) as resp:
            assert resp.status == 200


# ---- graceful shutdown: a real server process and a real signal ------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sigterm_drains_streams_in_flight_settles_them_and_exits(tmp_path: Path) -> None:
    fake = FakeGrok()
    await fake.start()
    data = tmp_path / "data"
    store = make_store("file", "", data)
    await store.open()
    await store.add_accounts([NewAccount(token="tok-drain")])
    await store.close()
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GROK2API_DATA_DIR": str(data),
        "GROK2API_UPSTREAM_URL": fake.base_url,
        "GROK2API_ASSETS_URL": fake.assets_url,
        "GROK2API_UPSTREAM_TRANSPORT": "aiohttp",
        "GROK2API_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GROK2API_SHUTDOWN_GRACE_SECONDS": "30",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "grok2api", "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    # About 6 s of answer: time enough to see the draining process refuse new work while it finishes.
    words = "[[tokens:20]] [[fault:slow-tokens:0.3]] hi there"
    slow = {**CHAT, "stream": True, "messages": [{"role": "user", "content": words}]}
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with suppress(aiohttp.ClientError):
                    async with http.get(url + "/readyz") as resp:
                        if resp.status == 200:
                            break
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                await asyncio.sleep(0.1)
            async with http.post(url + "/v1/chat/completions", json=slow) as stream:
                assert stream.status == 200
                first = await stream.content.readline()
                assert first.startswith(b"data: ")
                server.send_signal(signal.SIGTERM)
                for _ in range(100):  # the signal is handled on the server's loop
                    async with http.get(url + "/readyz") as resp:
                        ready = await resp.json()
                    if resp.status == 503:
                        break
                    await asyncio.sleep(0.05)
                assert resp.status == 503 and ready["status"] == "draining"
                async with http.post(url + "/v1/chat/completions", json=CHAT) as refused:
                    assert refused.status == 503 and int(refused.headers["Retry-After"]) >= 1
                    assert (await refused.json())["error"]["code"] == "shutting_down"
                rest = await stream.read()
            frames = sse_frames(first + rest)
            assert frames[-1] == "[DONE]"
            assert msgspec.json.decode(frames[-2])["choices"][0]["finish_reason"] == "stop"
        assert await asyncio.to_thread(server.wait, 30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
        await fake.stop()
    store = make_store("file", "", data)
    await store.open()
    try:
        account = await store.get_account("tok-drain")
        assert account is not None and account.requests_ok == 1  # the drained stream settled its lease
    finally:
        await store.close()


async def test_responses_carry_a_date_and_no_server_header(tmp_path: Path, fake: FakeGrok, server: str) -> None:
    async with (
        worker(tmp_path, fake, GROK2API_HTTP_SERVER=server) as w,
        aiohttp.ClientSession() as http,
        http.get(w.url + "/healthz") as resp,
    ):
        assert resp.status == 200
        assert "Server" not in resp.headers  # hypercorn's name and version are nobody's business
        sent = email.utils.parsedate_to_datetime(resp.headers["Date"])
        assert abs(sent.timestamp() - time.time()) < 120


def test_http_date_is_the_current_second_formatted_once() -> None:
    for _ in range(3):  # a second that turns between the reads is tried again
        second = int(time.time())
        first, again = http_date(), http_date()
        if int(time.time()) == second:
            break
    assert first == email.utils.formatdate(second, usegmt=True).encode("ascii")
    assert again is first  # formatted once for that second

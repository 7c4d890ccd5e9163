"""Shared fixtures (loaded by conftest.py as a pytest plugin) and what tests need to use them.

Stores: ``store`` is a freshly opened store on each backend; ``store_factory`` opens more. SQLite always
runs; MySQL and Redis need a server (TEST_MYSQL_URL, TEST_REDIS_URL). ``requires(service)`` skips a test
whose service is missing, or fails it when TEST_REQUIRE_SERVICES is set.

End to end: ``fake`` is a fake grok.com, ``gateway`` the real app (a ``LiveGateway``, under the HTTP server
``grok2api serve`` picks) pointed at it, ``client`` the official OpenAI SDK pointed at the gateway, and
``claude`` the official Anthropic SDK pointed at its Messages API. A test that takes ``chat_transport`` runs once
per way a chat reaches grok.com (WebSocket and REST); ``upstream_chats(fake)`` shows the chat turns the fake
received over either, in one shape.
``AdminClient`` signs in to the HTML admin through its login form, as a browser does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import re
import shutil
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiohttp
import anthropic
import msgspec
import openai
import pytest
from aiohttp import web
from hypercorn.asyncio import serve
from hypercorn.config import Config

from grok2api import http1
from grok2api.app import create_app
from grok2api.config import BootConfig
from grok2api.grok.browser import CurlTransport
from grok2api.grok.transport import AiohttpTransport, Transport
from grok2api.http1 import ConnectionLimit
from grok2api.services import Services
from grok2api.serving import http_server
from grok2api.store import make_store
from grok2api.store.base import NewAccount, Store
from grok2api.testing.fake_grok import FakeGrok

if TYPE_CHECKING:
    from redis.asyncio import Redis

# ---- services ----------------------------------------------------------------------------------


Service = Literal["mysql", "redis", "chromium"]

_URLS = {
    "mysql": ("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test", "asyncmy"),
    "redis": ("TEST_REDIS_URL", "redis://127.0.0.1:6379/15", "redis"),
}


def requires(service: Service) -> str:
    """What reaches ``service``: its URL (TEST_MYSQL_URL, TEST_REDIS_URL), or chromium's path.

    Without it the test is skipped; when CI asks for every service (TEST_REQUIRE_SERVICES) it fails instead.
    """
    if service == "chromium":
        found, reason = shutil.which("chromium") or "", "Debian chromium is not installed"
    else:
        variable, example, package = _URLS[service]
        found, reason = os.environ.get(variable, ""), f"{variable} is not set (e.g. {variable}={example})"
        if found and importlib.util.find_spec(package) is None:
            found, reason = "", f"{package} is not installed (pip install -e '.[{service}]')"
    if found:
        return found
    if os.environ.get("TEST_REQUIRE_SERVICES"):
        pytest.fail(f"{reason}, and TEST_REQUIRE_SERVICES is set", pytrace=False)
    pytest.skip(reason)


async def clean_mysql(url: str) -> None:
    """Drop every table (alembic_version too), so the store migrates an empty database."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from grok2api.store.sql_engine import normalize_url

    engine = create_async_engine(normalize_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))  # any order, child tables included
            tables = (await conn.execute(text("SHOW TABLES"))).scalars().all()
            for table in tables:
                await conn.execute(text(f"DROP TABLE IF EXISTS `{table}`"))
    finally:
        await engine.dispose()


def redis_pattern(prefix: str) -> str:
    """The SCAN pattern for the keys under ``prefix`` and nothing else (its glob characters escaped)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + ":*"


async def drop_redis_keys(redis_client: Redis, prefix: str) -> None:
    """Delete the keys under ``prefix`` only: the Redis test database may be shared with concurrent runs."""
    keys = [k async for k in redis_client.scan_iter(match=redis_pattern(prefix), count=1000)]
    if keys:
        await redis_client.delete(*keys)


async def drop_redis_prefix(url: str, prefix: str) -> None:
    """``drop_redis_keys`` over a connection of its own."""
    import redis.asyncio as aioredis

    redis_client = aioredis.Redis.from_url(url)
    try:
        await drop_redis_keys(redis_client, prefix)
    finally:
        await redis_client.aclose()


@pytest.fixture
def redis_url() -> str:
    """TEST_REDIS_URL (see ``requires``)."""
    return requires("redis")


# ---- stores ------------------------------------------------------------------------------------

STORE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


class StoreFactory(Protocol):
    """The ``store_factory`` fixture."""

    def __call__(self, kind: str, *, fresh: bool = True) -> Awaitable[Store]: ...


@pytest.fixture
async def store_factory(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """``await store_factory(kind, fresh=True)`` opens a store on ``kind``; ``fresh`` wipes the backend first.
    Open a second instance on the same data with ``fresh=False``. Everything opened is closed afterwards."""
    opened: list[Store] = []
    redis_prefix = f"g2a-test-{uuid.uuid4().hex[:12]}"
    redis_url = ""

    async def factory(kind: str, *, fresh: bool = True) -> Store:
        nonlocal redis_url
        store: Store
        if kind == "sqlite":
            if fresh:
                for suffix in ("", "-wal", "-shm"):
                    (tmp_path / f"grok2api.db{suffix}").unlink(missing_ok=True)
            store = make_store("sqlite", "", tmp_path)  # grok2api.db in the data dir
        elif kind == "mysql":
            url = requires("mysql")
            if fresh:
                await clean_mysql(url)
            store = make_store("mysql", url, tmp_path)
        elif kind == "redis":
            redis_url = requires("redis")
            from grok2api.store.redis import RedisStore

            if fresh:
                await drop_redis_prefix(redis_url, redis_prefix)
            # Built directly rather than by make_store, to give each test its own key prefix.
            store = RedisStore(redis_url, prefix=redis_prefix)
        else:
            raise ValueError(f"unknown store backend {kind!r}")
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in reversed(opened):
        await store.close()
    if redis_url:
        await drop_redis_prefix(redis_url, redis_prefix)


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, store_factory: StoreFactory) -> Store:
    """A freshly opened store on each backend."""
    kind: str = request.param
    return await store_factory(kind)


# ---- store outages ------------------------------------------------------------------------------


class FlakyStore:
    """A store that fails like an unreachable database while its ``failing`` set names the call (``"*"``: every
    call but open and close); otherwise the wrapped store answers."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.failing: set[str] = set()
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("open", "close") or not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if name in self.failing or "*" in self.failing:
                self.failures += 1
                raise sqlite3.OperationalError("disk I/O error")
            return await attr(*args, **kwargs)

        return call


class TcpProxy:
    """A loopback TCP proxy in front of a real server (MariaDB, Redis), which a test can ``cut`` (new connections
    refused, open ones dropped), ``hang`` (connections accepted, nothing forwarded either way: a server that
    stopped answering) and ``restore``."""

    def __init__(self, target: str) -> None:
        self.host, _, port = target.rpartition(":")
        self.target_port = int(port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def url(self, template: str) -> str:
        """``template`` (a URL of the real server) pointed at the proxy."""
        return template.replace(f"{self.host}:{self.target_port}", f"127.0.0.1:{self.port}")

    async def cut(self) -> None:
        await self._stop_listening()
        self._drop_all()

    def hang(self) -> None:
        self._flowing.clear()

    async def restore(self) -> None:
        self._flowing.set()
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self._stop_listening()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        await self._flowing.wait()  # a hung server: accepted, and then nothing
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)


# ---- end to end ----------------------------------------------------------------------------------

# The admin password a LiveGateway starts with unless told otherwise. With none configured, a gateway's
# first start generates one and hashes it (about 0.3 s per start): only tests of that path want it.
ADMIN_PASSWORD = "live-test-password"


class LiveGateway:
    """The real app on a loopback port, under the HTTP server ``grok2api serve`` would pick (an async context manager:
    started, then stopped)."""

    def __init__(
        self,
        data_dir: Path,
        upstream: str,
        assets: str,
        env: dict[str, str] | None = None,
        storage_mode: str = "file",
        database_url: str = "",
        admin_password: str = ADMIN_PASSWORD,
        store: Store | None = None,
    ) -> None:
        """``admin_password=""`` starts with no admin password configured (``env`` may still set one). ``store``
        replaces the one the storage mode would make (e.g. a ``FlakyStore``)."""
        environ = {"GROK2API_UPSTREAM_URL": upstream, "GROK2API_ASSETS_URL": assets}
        # TEST_HTTP_SERVER=hypercorn runs the end-to-end tests on hypercorn instead of the default's choice.
        if os.environ.get("TEST_HTTP_SERVER"):
            environ["GROK2API_HTTP_SERVER"] = os.environ["TEST_HTTP_SERVER"]
        if admin_password:
            environ["GROK2API_ADMIN_PASSWORD"] = admin_password
        # No spare chat sockets unless a test asks (tests/test_spare_sockets_e2e.py): each would add a socket to
        # the fake's log that the tests reading it would have to step over.
        environ["GROK2API_SPARE_SOCKET_SECONDS"] = "0"
        environ.update(env or {})
        # Boot settings come from the same environment (timeouts a test shortens, for instance).
        base = {"GROK2API_DATA_DIR": str(data_dir), "STORAGE_MODE": storage_mode, "DATABASE_URL": database_url}
        self.boot = BootConfig.from_env({**environ, **base})
        self.services = Services(self.boot, store=store)
        self.app = create_app(self.boot, self.services)
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.set_inheritable(True)
        self._task = asyncio.create_task(self._serve(sock))
        self.url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return self.url
                except aiohttp.ClientError:
                    pass
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.05)
        raise RuntimeError("gateway did not start")

    async def _serve(self, sock: socket.socket) -> None:
        """The HTTP server ``grok2api serve`` would pick for this configuration, on ``sock``."""
        if http_server(self.boot.http_server) == "builtin":
            limit = ConnectionLimit(self.boot.max_connections)
            timeout = self.boot.header_timeout
            stop = self._shutdown.wait
            await http1.serve(self.app, [sock], stop, header_timeout=timeout, limit=limit, close_timeout=1)
            return
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 1
        await serve(self.app, config, shutdown_trigger=self._shutdown.wait)  # type: ignore[arg-type]

    async def __aenter__(self) -> LiveGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._shutdown.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 15)

    async def settings(self, **changes: Any) -> None:
        await self.services.update_settings(changes)

    async def add_accounts(self, *tokens: str, tier: str = "basic") -> None:
        await self.services.store.add_accounts([NewAccount(token=t, tier=tier) for t in tokens])
        await self.services.reload(force=True)


class AdminClient:
    """A cookie-keeping HTTP client that signs in through the login form, like a browser would."""

    def __init__(self, url: str) -> None:
        self.url = url
        # The default jar ignores cookies from IP hosts; the gateway listens on 127.0.0.1.
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def login(self, password: str = ADMIN_PASSWORD, username: str = "admin") -> aiohttp.ClientResponse:
        async with self.http.get(self.url + "/login") as resp:
            form_token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        assert form_token
        resp = await self.http.post(
            self.url + "/login",
            allow_redirects=False,
            data={"username": username, "password": password, "csrf_token": form_token.group(1)},
        )
        if resp.status == 303:
            page = await self.get("/manage")
            found = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
            assert found
            self.csrf = found.group(1)
        return resp

    async def get(self, path: str, **headers: str) -> str:
        async with self.http.get(self.url + path, headers=headers, allow_redirects=False) as resp:
            assert resp.status == 200, (path, resp.status)
            return await resp.text()

    async def post(
        self,
        path: str,
        data: object = None,
        *,
        csrf: bool = True,
        htmx: bool = True,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        sent = dict(headers or {})
        if csrf:
            sent["X-CSRF-Token"] = self.csrf
        if htmx:
            sent["HX-Request"] = "true"
        return await self.http.post(self.url + path, data=data, headers=sent, allow_redirects=False)


def _boxes(data: bytes) -> dict[bytes, bytes]:
    """Top-level ISO-BMFF boxes of ``data`` by type (size-prefixed; every byte must be accounted for)."""
    out: dict[bytes, bytes] = {}
    at = 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        assert size >= 8 and at + size <= len(data), "a box runs past the end of the file"
        out[data[at + 4 : at + 8]] = data[at + 8 : at + size]
        at += size
    return out


def assert_playable_mp4(data: bytes) -> None:
    """A file a player can open: ftyp, a movie with a video track (H.264 sample entry) and media data."""
    top = _boxes(data)
    assert top[b"ftyp"][:4] in (b"isom", b"mp42", b"avc1")
    moov = _boxes(top[b"moov"])
    assert b"mvhd" in moov and b"trak" in moov
    assert b"vide" in moov[b"trak"] and b"avc1" in moov[b"trak"]  # handler type and sample entry
    assert len(top[b"mdat"]) > 0


def assert_request_timeout_body(shape: str, content_type: str, body: bytes) -> None:
    """The 408 for a stalled request body, in the shape of the API it went to: ``openai``, ``admin-api`` or an
    admin ``page``."""
    if shape == "openai":
        assert msgspec.json.decode(body)["error"]["code"] == "request_timeout"
    elif shape == "admin-api":
        decoded: dict[str, Any] = msgspec.json.decode(body)
        assert (decoded["success"], decoded["code"]) == (False, "REQUEST_TIMEOUT")
    else:
        assert content_type.startswith("text/html") and b"stopped arriving" in body


def sse_frames(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body; every event must be one ``data:`` line and a blank line."""
    text = raw.decode()
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    return [e[len("data: ") :] for e in events]


@dataclass
class UpstreamChat:
    """One chat turn as the fake grok.com received it, over either transport: a mgw WebSocket session (``ws``)
    or a REST ``conversations/new`` call (``rest``). ``refused`` is the status of a refused handshake."""

    transport: str
    token: str | None
    mode: str | None
    message: str
    file_ids: list[str]
    temporary: bool
    memory: bool  # False when the chat told grok.com to leave the account's memory alone
    refused: int | None = None


def _text_of(chunks: list[dict[str, Any]]) -> str:
    return "\n".join(str(c["text"].get("text", "")) for c in chunks if isinstance(c.get("text"), dict))


def _file_mentions(chunks: list[dict[str, Any]]) -> list[str]:
    return [str(c["mention"]["target"]["file_mention"]["file_id"]) for c in chunks if "mention" in c]


def upstream_chats(fake: FakeGrok) -> list[UpstreamChat]:
    """Every chat turn the fake saw, WebSocket sessions (refused handshakes included) and REST calls, in order."""
    found: list[tuple[float, UpstreamChat]] = []
    for session in fake.mgw_sessions():
        chunks, x_grok = session.input_chunks, session.x_grok
        chat = UpstreamChat(
            "ws",
            session.token,
            session.mode,
            _text_of(chunks),
            _file_mentions(chunks),
            temporary=x_grok.get("is_temporary") is True,
            memory=x_grok.get("disable_memory") is not True,
            refused=session.refused,
        )
        found.append((session.time, chat))
    for call in fake.chat_calls():
        body = call.json if isinstance(call.json, dict) else {}
        chat = UpstreamChat(
            "rest",
            call.token,
            body.get("modeId"),
            str(body.get("message", "")),
            list(body.get("fileAttachments", [])),
            temporary=body.get("temporary") is True,
            memory=body.get("disableMemory") is not True,
        )
        found.append((call.time, chat))
    return [chat for _, chat in sorted(found, key=lambda pair: pair[0])]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGrok]:
    """A fake grok.com on a loopback port."""
    server = FakeGrok()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# The ways a chat reaches grok.com (the ``chat_transport`` setting): the mgw WebSocket, or the REST fallback.
TRANSPORTS = ("ws", "rest")


@pytest.fixture(params=TRANSPORTS)
def chat_transport(request: pytest.FixtureRequest) -> str:
    """The ``chat_transport`` setting the ``gateway`` runs with: a test that takes this fixture runs once per
    transport (parametrize it indirectly to pick one). Tests without it run on the default, the WebSocket."""
    value: str = request.param
    return value


@pytest.fixture
def gateway_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Extra environment for the ``gateway`` fixture: the ``chat_transport`` setting when the test takes that
    fixture. A module overrides this fixture to change it."""
    if "chat_transport" in request.fixturenames:
        return {"GROK2API_CHAT_TRANSPORT": request.getfixturevalue("chat_transport")}
    return {}


@pytest.fixture
async def gateway(tmp_path: Path, fake: FakeGrok, gateway_env: dict[str, str]) -> AsyncIterator[LiveGateway]:
    """The real app on SQLite, pointed at the fake; no accounts yet. Its admin password
    is ADMIN_PASSWORD."""
    async with LiveGateway(tmp_path / "data", fake.base_url, fake.assets_url, env=gateway_env) as live:
        yield live


@pytest.fixture
async def client(gateway: LiveGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI SDK pointed at the gateway (no SDK retries, so failures show)."""
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="not-needed", max_retries=0, timeout=30)
    try:
        yield sdk
    finally:
        await sdk.close()


@pytest.fixture
async def claude(gateway: LiveGateway) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The official Anthropic SDK pointed at the gateway's Messages API (no SDK retries, so failures show)."""
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="not-needed", max_retries=0, timeout=30)
    try:
        yield sdk
    finally:
        await sdk.close()


# The transports the protocol layer can talk through (the ``upstream_transport`` setting).
UPSTREAM_TRANSPORTS = ("aiohttp", "curl_cffi")


@pytest.fixture(params=UPSTREAM_TRANSPORTS)
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """A transport the protocol layer talks through, closed after the test: a test that takes it runs once
    with aiohttp and once with curl_cffi impersonating Chrome."""
    t: Transport = AiohttpTransport() if request.param == "aiohttp" else CurlTransport()
    try:
        yield t
    finally:
        await t.close()


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port for the block; yields its base URL. A client that leaves
    cancels its handler, as on a real server."""
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()

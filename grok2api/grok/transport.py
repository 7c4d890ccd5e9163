"""How the protocol layer reaches grok.com: HTTP sessions (``HttpPool``) and WebSockets, behind one
small interface so a browser-impersonating implementation can stand beside the aiohttp one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import aiohttp
import msgspec
from multidict import CIMultiDict

from . import websocket_client
from .errors import UpstreamConnectionError, UpstreamHTTPError

log = logging.getLogger("grok2api.grok.transport")
MAX_FRAME = 16 * 1024 * 1024  # grok.com's own cap on a frame
HANDSHAKE_TIMEOUT = 20.0
_CLOSE_TIMEOUT = 2.0  # waiting longer for grok.com's close frame gains nothing
_REFUSAL_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=5)
_REFUSAL_BODY_LIMIT = 4096
_ENCODER = msgspec.json.Encoder()


def describe_connection_error(exc: BaseException) -> str:
    """A plain sentence for a transport failure (aiohttp's own texts embed object reprs)."""
    log.info("upstream transport error: %r", exc)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "grok.com did not answer in time"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return "could not connect to the configured proxy"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "could not connect to grok.com"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionError):
        return "grok.com closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "grok.com's answer was cut off"
    return "the connection to grok.com failed"


def retry_after_of(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class HttpPool:
    """The process's HTTP sessions: one plain session, plus one per SOCKS proxy (aiohttp needs a
    connector per SOCKS proxy; HTTP proxies work per request)."""

    def __init__(self) -> None:
        self._plain: aiohttp.ClientSession | None = None
        self._socks: dict[str, aiohttp.ClientSession] = {}

    def _new(self, connector: aiohttp.BaseConnector | None = None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector or aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=15),
            cookie_jar=aiohttp.DummyCookieJar(),
            read_bufsize=2**20,
            auto_decompress=True,
        )

    def session(self, proxy: str) -> tuple[aiohttp.ClientSession, str | None]:
        if proxy.startswith("socks"):
            sess = self._socks.get(proxy)
            if sess is None:
                try:
                    from aiohttp_socks import ProxyConnector
                except ImportError as exc:  # pragma: no cover - optional extra
                    raise UpstreamConnectionError(
                        "SOCKS proxies need the 'socks' extra: pip install grok2api[socks]"
                    ) from exc
                # aiohttp-socks spells "resolve names at the proxy" (socks5h) as rdns
                url, rdns = (
                    (proxy.replace("socks5h://", "socks5://", 1), True)
                    if proxy.startswith("socks5h://")
                    else (proxy, None)
                )
                sess = self._socks[proxy] = self._new(ProxyConnector.from_url(url, rdns=rdns))
            return sess, None
        if self._plain is None:
            self._plain = self._new()
        return self._plain, proxy or None

    async def close(self) -> None:
        sessions = [s for s in [self._plain, *self._socks.values()] if s is not None]
        for s in sessions:
            await s.close()
        self._plain, self._socks = None, {}


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart body: a plain field (``filename`` None) or a file."""

    name: str
    value: bytes | str
    filename: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class HttpAnswer:
    """A whole HTTP answer, whatever the status."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


class HttpStream(Protocol):
    """An answer being read: status and headers at once, the body in chunks as they arrive."""

    status: int
    headers: CIMultiDict[str]

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; UpstreamConnectionError when the connection fails."""

    async def read_some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the body (for error answers); b"" when it cannot be read."""


class SessionPool(Protocol):
    def session(self, proxy: str) -> tuple[aiohttp.ClientSession, str | None]:
        """An aiohttp session for ``proxy`` and the per-request proxy to pass with it."""


class WebSocket(Protocol):
    handshake_headers: CIMultiDict[str]  # the headers of the answer that opened it (empty when not known)

    async def send_json(self, *objs: Any) -> None:
        """Send each of ``objs`` as a JSON text frame, in order (frames sent together leave in one write where
        the implementation can); UpstreamConnectionError when the socket is gone."""

    async def receive_text(self) -> str | None:
        """The next text frame, or None once the socket closed; UpstreamConnectionError on failure."""

    def buffered(self) -> bool:
        """Whether a received frame is waiting, so ``receive_text`` returns without waiting (False when
        the implementation cannot tell)."""

    def known_closed(self) -> bool:
        """Whether the socket is known to be closed or failing without reading from it (False when the
        implementation cannot tell): a spare socket grok.com let go is then not even tried."""

    async def close(self) -> None: ...


_CLOSING: set[asyncio.Task[None]] = set()  # closings still running after their caller was cancelled


async def release(ws: WebSocket, *helpers: asyncio.Task[Any]) -> None:
    """Stop ``helpers`` and close ``ws``, also when the caller is being cancelled (a client left): the ASGI
    server's cancel scope cancels every further await of that task, so the closing runs in a task of its own
    that the caller only waits for. Without this an abandoned socket stays open until grok.com ends it."""
    for helper in helpers:
        helper.cancel()

    async def close() -> None:
        if helpers:
            await asyncio.wait(helpers)
        await ws.close()

    closing = asyncio.create_task(close())
    _CLOSING.add(closing)
    closing.add_done_callback(_CLOSING.discard)
    await asyncio.shield(closing)


@runtime_checkable
class RefusalListener(Protocol):
    """A transport that keeps an egress (``EgressTransport``): told of a refusal it let through unseen, one that came
    inside an answer (an ``error`` event on an open WebSocket, an error line in a 200 stream)."""

    async def refused_in_band(self, method: str, url: str, what: str, detail: str) -> None: ...


async def report_in_band_refusal(transport: object, method: str, url: str, what: str, detail: str) -> None:
    """Tell ``transport`` (when it keeps an egress) that grok.com's anti-bot refused the call ``method`` ``url``
    inside its answer: ``what`` names the sign ("an anti-bot error event on the chat WebSocket"), ``detail`` is
    grok.com's message."""
    if isinstance(transport, RefusalListener):
        await transport.refused_in_band(method, url, what, detail)


class WebSocketOpener(Protocol):
    async def websocket(
        self, url: str, headers: Mapping[str, str], proxy: str, *, on_sent: Callable[[], object] | None = None
    ) -> WebSocket:
        """Open a WebSocket (through ``proxy`` when set). A refused handshake raises UpstreamHTTPError
        (its status and refusal body), anything else UpstreamConnectionError. ``on_sent`` is called once the
        handshake request is on its way (just before the handshake is awaited where the transport cannot tell):
        work that may overlap grok.com's answer starts there."""


class Transport(WebSocketOpener, SessionPool, Protocol):
    """grok.com's HTTP calls (``request``, ``stream``) and WebSockets; ``session`` is an aiohttp session for
    other hosts, such as client image URLs."""

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        data: bytes | None = None,
        form: Sequence[FormPart] | None = None,
        proxy: str = "",
        timeout: float | None = None,
    ) -> HttpAnswer:
        """One call to grok.com, read whole. Connection trouble raises UpstreamConnectionError."""

    def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        data: bytes | None = None,
        proxy: str = "",
        timeout: float | None = None,
    ) -> contextlib.AbstractAsyncContextManager[HttpStream]:
        """One call whose body is read as it arrives. Connection trouble raises UpstreamConnectionError."""

    async def close(self) -> None: ...


class AiohttpWebSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        # aiohttp keeps the handshake's answer only privately; without it the headers are simply not known.
        answer = getattr(ws, "_response", None)
        self.handshake_headers: CIMultiDict[str] = CIMultiDict(getattr(answer, "headers", None) or {})
        self._send_lock = asyncio.Lock()  # the heartbeat and the turn send from different tasks
        # aiohttp queues the frames it has parsed; it has no public way to ask, so a version that moves the
        # queue simply batches nothing. Looked up once: the queue lives as long as the socket.
        self._parsed: Any = getattr(getattr(ws, "_reader", None), "_buffer", None)

    async def send_json(self, *objs: Any) -> None:
        try:
            async with self._send_lock:
                for obj in objs:
                    await self._ws.send_str(_ENCODER.encode(obj).decode())
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamConnectionError(describe_connection_error(exc)) from exc

    def buffered(self) -> bool:
        return bool(self._parsed)

    def known_closed(self) -> bool:
        return self._ws.closed or bool(self._ws.exception())

    async def receive_text(self) -> str | None:
        while True:
            try:
                msg = await self._ws.receive()
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise UpstreamConnectionError(describe_connection_error(exc)) from exc
            if msg.type == aiohttp.WSMsgType.TEXT:
                return str(msg.data)
            if msg.type == aiohttp.WSMsgType.BINARY:
                return bytes(msg.data).decode("utf-8", "replace")
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return None
            if msg.type == aiohttp.WSMsgType.ERROR:
                error = msg.data
                if isinstance(error, aiohttp.WebSocketError) and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                    raise UpstreamConnectionError("grok.com sent a WebSocket frame over 16 MiB")
                raise UpstreamConnectionError(describe_connection_error(msg.data))

    async def close(self) -> None:
        try:
            await self._ws.close()
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            log.debug("closing the WebSocket failed: %r", exc)


def ws_url(http_url: str) -> str:
    """The WebSocket form of an HTTP(S) URL (``https://grok.com/x`` → ``wss://grok.com/x``)."""
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://") :]
    if http_url.startswith("http://"):
        return "ws://" + http_url[len("http://") :]
    return http_url


def _http_url(ws_url: str) -> str:
    if ws_url.startswith("wss://"):
        return "https://" + ws_url[len("wss://") :]
    if ws_url.startswith("ws://"):
        return "http://" + ws_url[len("ws://") :]
    return ws_url


_CONNECTION_ERRORS = (aiohttp.ClientError, ConnectionError, TimeoutError)


def _timeout(total: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, sock_connect=10 if total else 15)


class _AiohttpStream:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: CIMultiDict[str] = CIMultiDict(resp.headers)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except _CONNECTION_ERRORS as exc:
            raise UpstreamConnectionError(describe_connection_error(exc)) from exc

    async def read_some(self, limit: int) -> bytes:
        try:
            return await self._resp.content.read(limit)
        except _CONNECTION_ERRORS:
            return b""


class AiohttpTransport(HttpPool):
    """aiohttp for HTTP, and for WebSockets through a proxy; without one, WebSockets go straight over asyncio
    (``direct_websockets``, on unless turned off)."""

    def __init__(self, *, direct_websockets: bool = True) -> None:
        super().__init__()
        self.direct_websockets = direct_websockets

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        data: bytes | None = None,
        form: Sequence[FormPart] | None = None,
        proxy: str = "",
        timeout: float | None = None,
    ) -> HttpAnswer:
        session, proxy_url = self.session(proxy)
        body: Any = data
        if form is not None:
            body = aiohttp.FormData()
            for part in form:
                body.add_field(part.name, part.value, filename=part.filename, content_type=part.content_type)
        try:
            async with session.request(
                method, url, data=body, headers=dict(headers), proxy=proxy_url, timeout=_timeout(timeout)
            ) as resp:
                return HttpAnswer(resp.status, CIMultiDict(resp.headers), await resp.read())
        except _CONNECTION_ERRORS as exc:
            raise UpstreamConnectionError(describe_connection_error(exc)) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        data: bytes | None = None,
        proxy: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[HttpStream]:
        session, proxy_url = self.session(proxy)
        try:
            async with session.request(
                method, url, data=data, headers=dict(headers), proxy=proxy_url, timeout=_timeout(timeout)
            ) as resp:
                yield _AiohttpStream(resp)
        except _CONNECTION_ERRORS as exc:
            raise UpstreamConnectionError(describe_connection_error(exc)) from exc

    async def websocket(
        self, url: str, headers: Mapping[str, str], proxy: str, *, on_sent: Callable[[], object] | None = None
    ) -> WebSocket:
        if not proxy and self.direct_websockets:
            return await self._direct_websocket(url, headers, on_sent)
        session, proxy_url = self.session(proxy)
        if on_sent is not None:
            on_sent()
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                ws = await session.ws_connect(
                    url,
                    headers=dict(headers),
                    proxy=proxy_url,
                    max_msg_size=MAX_FRAME,
                    autoping=True,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_TIMEOUT),
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 101:  # upgraded, but with bad upgrade headers: a broken peer, not a refusal
                raise UpstreamConnectionError("grok.com answered the WebSocket handshake incorrectly") from exc
            raise await self._refusal(url, headers, proxy, exc.status, CIMultiDict(exc.headers or {})) from exc
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            raise UpstreamConnectionError(describe_connection_error(exc)) from exc
        return AiohttpWebSocket(ws)

    async def _direct_websocket(
        self, url: str, headers: Mapping[str, str], on_sent: Callable[[], object] | None
    ) -> WebSocket:
        """With no proxy between, the socket is opened straight on asyncio (``websocket_client``): the same
        handshake and frames without aiohttp's per-request machinery, which a socket per chat turn pays each time."""
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                return await websocket_client.connect(url, dict(headers), max_size=MAX_FRAME, on_sent=on_sent)
        except websocket_client.HandshakeRefused as exc:
            raise await self._refusal(url, headers, "", exc.status, exc.headers) from exc
        except TimeoutError as exc:
            raise UpstreamConnectionError(describe_connection_error(exc)) from exc

    async def _refusal(
        self, url: str, headers: Mapping[str, str], proxy: str, status: int, seen: CIMultiDict[str]
    ) -> UpstreamHTTPError:
        """A refused handshake's answer is not read, but its body says why (blocked account, anti-bot,
        Cloudflare): ask again with a plain GET and read it. The handshake's own status and headers stay
        authoritative; the body is used only when the GET is refused the same way."""
        session, proxy_url = self.session(proxy)
        body, content_type = "", seen.get("Content-Type", "")
        try:
            async with session.get(
                _http_url(url), headers=dict(headers), proxy=proxy_url, timeout=_REFUSAL_TIMEOUT
            ) as resp:
                if resp.status == status:
                    raw = await resp.content.read(_REFUSAL_BODY_LIMIT)
                    body = raw.decode("utf-8", "replace")
                    content_type = resp.headers.get("Content-Type", content_type)
                    for name, value in resp.headers.items():
                        seen.setdefault(name, value)
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as get_exc:
            log.info("could not read the WebSocket refusal body: %r", get_exc)
        return UpstreamHTTPError(status, body, content_type, retry_after_of(seen), headers=seen)

"""A WebSocket client straight on asyncio, for grok.com's sockets when no proxy stands between.

Every chat turn opens a socket of its own (grok.com's chat WebSocket is one socket per turn), so what opening one
costs is paid per turn. aiohttp's ``ws_connect`` goes through its whole request machinery for that (request and
answer objects, the connector, happy eyeballs, a reader, a writer, a message queue); here one protocol object
writes the upgrade request, reads the answer's head and then the frames, and hands text over as it completes.

What it speaks (RFC 6455, client side): no extensions and no subprotocol (the same handshake aiohttp makes with
compression off), masked frames out, fragmented messages in, pings answered, the closing handshake. A refused
handshake raises ``HandshakeRefused`` with the answer's status and headers, for the caller to read the body
through its HTTP client; protocol trouble ends the socket with ``UpstreamConnectionError``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import os
import random
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import msgspec
from multidict import CIMultiDict

from .errors import UpstreamConnectionError

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's constant for Sec-WebSocket-Accept
_HEAD_LIMIT = 64 * 1024  # an answer head longer than this is not a WebSocket answer
_CONNECT_TIMEOUT = 15.0  # the same bound aiohttp's session puts on connecting
# A name with several addresses (IPv6 and IPv4, say) moves on to the next one after this long: an address family
# whose route is broken drops the connection attempt silently, and the last address still gets the whole bound.
_NEXT_ADDRESS_AFTER = 2.0
_CLOSE_TIMEOUT = 2.0
_DNS_TTL = 300.0  # what the aiohttp session caches names for
_TEXT, _BINARY, _CLOSE, _PING, _PONG, _CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
_CLOSED = "grok.com closed the connection"
_ENCODER = msgspec.json.Encoder()


class HandshakeRefused(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int, headers: CIMultiDict[str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n and not n % (1 << 20) else f"{n} bytes"


def _mask(payload: bytes, key: bytes) -> bytes:
    # XOR as one big integer: a C-speed loop over the payload, however long.
    n = len(payload)
    keystream = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keystream, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = random.getrandbits(32).to_bytes(4, "big")  # masking defeats intermediaries' caches, it is not secrecy
    return head + key + _mask(payload, key)


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer ``key`` with."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def parse_head(head: bytes) -> tuple[int, CIMultiDict[str]]:
    """Status and headers of an HTTP/1.1 answer head (without its blank line); ValueError when malformed."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.x answer")
    status = int(rest[:3])
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError("malformed header line")
        headers.add(name, value.strip())
    return status, headers


class _Protocol(asyncio.Protocol):
    """The socket's state: the answer's head while it is awaited, then the frames."""

    def __init__(self, request: bytes, max_size: int, on_sent: Callable[[], object] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.request = request
        self.on_sent = on_sent
        self.max_size = max_size
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[tuple[int, CIMultiDict[str]]] = self.loop.create_future()
        self.head_buffer: bytearray | None = bytearray()  # None once the head is in
        self.buffer = bytearray()
        self.messages: collections.deque[str] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.fragments: list[bytes] | None = None
        self.fragment_opcode = 0
        self.fragment_size = 0
        self.ended = False  # no more messages: the peer closed, or the socket failed (``error``)
        self.error: UpstreamConnectionError | None = None
        self.close_sent = False
        self.finished: asyncio.Future[None] = self.loop.create_future()  # the peer's close frame, or the socket gone
        self.writable: asyncio.Future[None] | None = None  # set while the transport's buffer is full
        self.lost = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's subclasses
        self.transport.write(self.request)
        on_sent, self.on_sent = self.on_sent, None
        if on_sent is not None:
            on_sent()

    def data_received(self, data: bytes) -> None:
        if self.head_buffer is not None:
            self.head_buffer += data
            end = self.head_buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head_buffer) > _HEAD_LIMIT:
                    self._head_failed(
                        UpstreamConnectionError("grok.com's answer to the WebSocket handshake is too long")
                    )
                return
            head, rest = bytes(self.head_buffer[:end]), bytes(self.head_buffer[end + 4 :])
            self.head_buffer = None
            try:
                parsed = parse_head(head)
            except ValueError:
                self._head_failed(UpstreamConnectionError("grok.com answered the WebSocket handshake incorrectly"))
                return
            if not self.head.done():
                self.head.set_result(parsed)
            if parsed[0] != 101 or not rest:
                return
            data = rest
        self._frames(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.head.done():
            self.head.set_exception(UpstreamConnectionError(_CLOSED))
        self._end(None)
        if not self.finished.done():
            self.finished.set_result(None)
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        if self.writable is None or self.writable.done():
            self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    # -- frames

    def _frames(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, size = 0, len(buf)
        while size - pos >= 2 and not self.ended:
            b0, b1 = buf[pos], buf[pos + 1]
            length, at = b1 & 0x7F, pos + 2
            if length == 126:
                if size - at < 2:
                    break
                length, at = int.from_bytes(buf[at : at + 2], "big"), at + 2
            elif length == 127:
                if size - at < 8:
                    break
                length, at = int.from_bytes(buf[at : at + 8], "big"), at + 8
            if b1 & 0x80 or b0 & 0x70:
                self._fail("grok.com sent a WebSocket frame this client cannot read")
                return
            if length + self.fragment_size > self.max_size:
                self._fail(f"grok.com sent a WebSocket frame over {_size(self.max_size)}", code=1009)
                return
            if size - at < length:
                break
            pos = at + length
            self._frame(b0 & 0x80, b0 & 0x0F, bytes(buf[at:pos]))
        if pos:
            del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (_TEXT, _BINARY):
            if self.fragments is not None:
                self._fail("grok.com started a WebSocket message inside another")
            elif fin:
                self._message(opcode, payload)
            else:
                self.fragments, self.fragment_opcode, self.fragment_size = [payload], opcode, len(payload)
        elif opcode == _CONTINUATION:
            if self.fragments is None:
                self._fail("grok.com continued a WebSocket message it had not started")
                return
            self.fragments.append(payload)
            self.fragment_size += len(payload)
            if fin:
                whole, self.fragments, self.fragment_size = b"".join(self.fragments), None, 0
                self._message(self.fragment_opcode, whole)
        elif not fin or len(payload) > 125:
            self._fail("grok.com sent a malformed WebSocket control frame")
        elif opcode == _PING:
            self._write(_PONG, payload)
        elif opcode == _CLOSE:
            if not self.close_sent:  # echo the status, as the closing handshake asks
                self._write(_CLOSE, payload[:2])
                self.close_sent = True
            self._end(None)
            if not self.finished.done():
                self.finished.set_result(None)
            if self.transport is not None:
                self.transport.close()
        elif opcode != _PONG:
            self._fail("grok.com sent a WebSocket frame of an unknown kind")

    def _message(self, opcode: int, payload: bytes) -> None:
        if opcode == _BINARY:
            text = payload.decode("utf-8", "replace")
        else:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                self._fail("grok.com sent a WebSocket text frame that is not UTF-8")
                return
        self.messages.append(text)
        self._wake()

    # -- ends

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, error: UpstreamConnectionError | None) -> None:
        if not self.ended:
            self.ended, self.error = True, error
        self._wake()

    def _fail(self, reason: str, code: int = 1002) -> None:
        self._end(UpstreamConnectionError(reason))
        if not self.close_sent:
            self._write(_CLOSE, code.to_bytes(2, "big"))
            self.close_sent = True
        if self.transport is not None:
            self.transport.abort()

    def _head_failed(self, error: UpstreamConnectionError) -> None:
        self.head_buffer = None
        if not self.head.done():
            self.head.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))


class ClientWebSocket:
    """An open socket (the ``WebSocket`` of ``transport.py``)."""

    def __init__(self, protocol: _Protocol, handshake_headers: CIMultiDict[str]) -> None:
        self._p = protocol
        self.handshake_headers = handshake_headers

    async def send_json(self, *objs: Any) -> None:
        """A text frame per object, all in one write (one system call, and one segment where they fit)."""
        frames = [encode_frame(_TEXT, _ENCODER.encode(obj)) for obj in objs]
        p = self._p
        if p.close_sent or p.transport is None or p.transport.is_closing():
            raise UpstreamConnectionError(_CLOSED)
        p.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        if p.writable is not None and not p.writable.done():  # let a full buffer drain before the next
            await p.writable
            if p.lost:
                raise UpstreamConnectionError(_CLOSED)

    def buffered(self) -> bool:
        return bool(self._p.messages)

    def known_closed(self) -> bool:
        p = self._p
        return p.ended or p.lost or p.close_sent

    async def receive_text(self) -> str | None:
        p = self._p
        while True:
            if p.messages:
                return p.messages.popleft()
            if p.ended:
                if p.error is not None:
                    raise p.error
                return None
            p.waiter = p.loop.create_future()
            try:
                await p.waiter
            finally:
                p.waiter = None

    async def close(self) -> None:
        """The closing handshake: a close frame, the peer's answer (at most ``_CLOSE_TIMEOUT``), then the end."""
        p = self._p
        transport = p.transport
        if transport is None:
            return
        if not p.close_sent and not transport.is_closing():
            transport.write(encode_frame(_CLOSE, (1000).to_bytes(2, "big")))
            p.close_sent = True
        if not p.finished.done():
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await asyncio.shield(p.finished)
            except TimeoutError:
                transport.abort()
                return
        transport.close()


class _Names:
    """Host names resolved for ``_DNS_TTL`` seconds (numeric hosts need no resolving)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], tuple[float, list[tuple[str, int]]]] = {}

    async def addresses(self, host: str, port: int) -> list[tuple[str, int]]:
        now = time.monotonic()
        hit = self._cache.get((host, port))
        if hit is not None and hit[0] > now:
            return hit[1]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = list(dict.fromkeys((str(info[4][0]), port) for info in infos))
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[(host, port)] = (now + _DNS_TTL, found)
        return found


_NAMES = _Names()
_TLS: ssl.SSLContext | None = None


async def _tls_context() -> ssl.SSLContext:
    global _TLS
    if _TLS is None:
        # Loading the system's certificates reads files: once per process, off the event loop.
        context = await asyncio.to_thread(ssl.create_default_context)
        context.set_alpn_protocols(["http/1.1"])
        _TLS = context
    return _TLS


_OWN_HEADERS = frozenset(("host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version"))


def _request(target: str, host_header: str, key: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if not any(name.lower() == "accept" for name in headers):
        lines.append("Accept: */*")
    for name, value in headers.items():
        if name.lower() in _OWN_HEADERS:
            continue
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise UpstreamConnectionError("a header for grok.com holds a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def connect(
    url: str,
    headers: dict[str, str],
    *,
    max_size: int,
    tls: ssl.SSLContext | None = None,
    on_sent: Callable[[], object] | None = None,
) -> ClientWebSocket:
    """Open ``url`` (ws:// or wss://) with ``headers``. Raises HandshakeRefused for a non-101 answer,
    UpstreamConnectionError for anything else that goes wrong; no timeout of its own beyond connecting.
    ``on_sent`` is called once, as soon as the handshake request is written (not at all if no connection was
    made): what runs then overlaps grok.com's answer instead of holding up the request."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise UpstreamConnectionError(f"not a WebSocket address: {url}")
    host = parts.hostname
    port = parts.port or (443 if secure else 80)
    host_header = parts.netloc.rpartition("@")[2]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    request = _request(target, host_header, key, headers)
    context = (tls or await _tls_context()) if secure else None
    loop = asyncio.get_running_loop()
    try:
        addresses = await _NAMES.addresses(host, port)
    except OSError as exc:
        raise UpstreamConnectionError("could not connect to grok.com") from exc
    protocol: _Protocol | None = None
    failure: BaseException = OSError("no address for the host")
    for index, (address, address_port) in enumerate(addresses):
        last = index == len(addresses) - 1
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT if last else min(_CONNECT_TIMEOUT, _NEXT_ADDRESS_AFTER)):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(request, max_size, on_sent),
                    address,
                    address_port,
                    ssl=context,
                    server_hostname=host if secure else None,
                )
            break
        except (OSError, TimeoutError) as exc:
            failure = exc
    if protocol is None:
        if isinstance(failure, ssl.SSLError | ssl.CertificateError):
            raise UpstreamConnectionError("the TLS handshake with grok.com failed") from failure
        if isinstance(failure, TimeoutError):
            raise UpstreamConnectionError("grok.com did not answer in time") from failure
        raise UpstreamConnectionError("could not connect to grok.com") from failure
    try:
        status, answer = await protocol.head
    except BaseException:
        if protocol.transport is not None:
            protocol.transport.abort()
        raise
    if status != 101:
        if protocol.transport is not None:
            protocol.transport.abort()
        raise HandshakeRefused(status, answer)
    upgrade_ok = answer.get("Upgrade", "").lower() == "websocket"
    connection_ok = "upgrade" in answer.get("Connection", "").lower()
    if not (upgrade_ok and connection_ok and answer.get("Sec-WebSocket-Accept", "") == accept_for(key)):
        if protocol.transport is not None:
            protocol.transport.abort()
        raise UpstreamConnectionError("grok.com answered the WebSocket handshake incorrectly")
    return ClientWebSocket(protocol, answer)

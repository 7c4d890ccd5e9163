"""The WebSocket client straight on asyncio: against aiohttp's server (a real peer), against hand-written answers
(what a broken or hostile peer sends), over TLS, and on uvloop's loop, whose transports differ from asyncio's."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from grok2api.grok import websocket_client
from grok2api.grok.errors import UpstreamConnectionError
from grok2api.grok.websocket_client import HandshakeRefused, accept_for, connect, encode_frame

from harness import serve_app

MAX = 1 << 20

# -- a real peer: aiohttp's WebSocket server


async def _peer(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(autoping=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.PONG:
            await ws.send_str("pong:" + msg.data.decode())
        elif msg.type == aiohttp.WSMsgType.TEXT:
            if msg.data == '"ping me"':
                await ws.ping(b"p1")
            elif msg.data == '"bye"':
                await ws.close(code=4001)
            else:
                await ws.send_str("echo:" + msg.data)
    return ws


@asynccontextmanager
async def peer() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/ws", _peer)
    async with serve_app(app) as base:
        yield base.replace("http://", "ws://") + "/ws"


async def _conversation(url: str) -> None:
    async with asyncio.timeout(10):  # a missing answer fails the test instead of hanging it
        await _talk(url)


async def _talk(url: str) -> None:
    ws = await connect(url, {"Cookie": "sso=a"}, max_size=MAX)
    await ws.send_json({"n": 1, "text": "é" * 70_000})  # a 64-bit length frame out, a 16-bit one... both masked
    assert await ws.receive_text() == 'echo:{"n":1,"text":"' + "é" * 70_000 + '"}'
    await ws.send_json("ping me")  # the peer pings; the client's pong comes back as text
    assert await ws.receive_text() == "pong:p1"
    await ws.send_json("bye")  # the peer closes: the end of the messages, and no more sending
    assert await ws.receive_text() is None
    assert await ws.receive_text() is None
    with pytest.raises(UpstreamConnectionError):
        await ws.send_json("late")
    await ws.close()


async def test_a_conversation_with_a_real_peer() -> None:
    async with peer() as url:
        await _conversation(url)


def test_the_same_conversation_on_uvloops_loop() -> None:
    pytest.importorskip("uvloop")
    from grok2api.uvloop_loop import new_event_loop

    async def main() -> None:
        async with peer() as url:
            await _conversation(url)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())


async def test_a_socket_the_peer_closed_is_known_closed_before_any_read() -> None:
    async with peer() as url:
        ws = await connect(url, {}, max_size=MAX)
        assert not ws.known_closed()
        await ws.send_json("bye")  # the peer closes; nothing is read here
        async with asyncio.timeout(5):
            while not ws.known_closed():
                await asyncio.sleep(0.005)
        assert await ws.receive_text() is None
        await ws.close()


async def test_closing_waits_for_the_peers_close_frame() -> None:
    async with peer() as url:
        ws = await connect(url, {}, max_size=MAX)
        await ws.close()
        assert ws._p.finished.done() and ws._p.close_sent
        with pytest.raises(UpstreamConnectionError):
            await ws.send_json("after close")
        await ws.close()  # twice is harmless


# -- hand-written answers


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@asynccontextmanager
async def raw_server(script: Script) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads the upgrade request's head and hands the rest to ``script`` with the request."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        try:
            await asyncio.wait_for(script(reader, writer, head), 10)  # the client then sees the connection end
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/mgw/?uid=u%201", heads
    finally:
        server.close()
        await server.wait_closed()


def switching(head: bytes, accept: str | None = None) -> bytes:
    key = next(line.split(b": ", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key"))
    accept = accept_for(key.decode()) if accept is None else accept
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\nSet-Cookie: __cf_bm=b1\r\n\r\n"
    ).encode()


def server_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = False) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((first, mask_bit | n))
    elif n < 1 << 16:
        head = bytes((first, mask_bit | 126)) + struct.pack(">H", n)
    else:
        head = bytes((first, mask_bit | 127)) + struct.pack(">Q", n)
    if masked:
        return head + b"\0\0\0\0" + payload
    return head + payload


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    assert b1 & 0x80, "client frames are masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    key = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data))


async def test_the_upgrade_request_carries_the_headers_and_the_answers_are_kept() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        # The answer's head, two fragmented messages and a binary one in one write, right behind it.
        writer.write(
            switching(head)
            + server_frame(0x1, b"hel", fin=False)
            + server_frame(0x9, b"mid-message ping")
            + server_frame(0x0, b"lo")
            + server_frame(0x2, b"\xffbin")
        )
        assert await read_client_frame(reader) == (0xA, b"mid-message ping")
        assert await read_client_frame(reader) == (0x1, b'{"a":1}')
        writer.write(server_frame(0x8, struct.pack(">H", 1000)))
        assert await read_client_frame(reader) == (0x8, struct.pack(">H", 1000))

    async with raw_server(script) as (url, heads):
        ws = await connect(url, {"Origin": "https://grok.com", "Cookie": "sso=t"}, max_size=MAX)
        assert ws.handshake_headers["Set-Cookie"] == "__cf_bm=b1"
        assert await ws.receive_text() == "hello"
        assert ws.buffered()
        assert await ws.receive_text() == "\ufffdbin"
        await ws.send_json({"a": 1})
        assert await ws.receive_text() is None
        await ws.close()
    lines = heads[0].decode().split("\r\n")
    port = url.split(":")[2].split("/")[0]
    assert lines[0] == "GET /mgw/?uid=u%201 HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}" in lines
    assert {"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Accept: */*"} <= set(lines)
    assert {"Origin: https://grok.com", "Cookie: sso=t"} <= set(lines)
    key = next(line for line in lines if line.startswith("Sec-WebSocket-Key: ")).split(": ")[1]
    assert len(base64.b64decode(key)) == 16


async def test_on_sent_is_called_once_the_request_is_out_and_before_the_answer() -> None:
    # The peer answers only once the client has said it sent the request: a client that called ``on_sent`` after
    # the answer (or never) would wait for it until the test's bound.
    told = asyncio.Event()
    calls: list[int] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        await told.wait()
        writer.write(switching(head) + server_frame(0x1, b"hi"))
        await reader.read()

    def sent() -> None:
        calls.append(1)
        told.set()

    async with raw_server(script) as (url, heads):
        async with asyncio.timeout(10):
            ws = await connect(url, {}, max_size=MAX, on_sent=sent)
            assert await ws.receive_text() == "hi"
            await ws.close()
    assert calls == [1] and len(heads) == 1


async def test_on_sent_is_not_called_when_no_connection_was_made() -> None:
    calls: list[int] = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(UpstreamConnectionError, match="could not connect"):
            await connect(f"ws://127.0.0.1:{port}/", {}, max_size=MAX, on_sent=lambda: calls.append(1))
    assert calls == []


async def test_frames_sent_together_leave_in_one_write_and_in_order() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(switching(head))
        assert await read_client_frame(reader) == (0x1, b'{"n":1}')
        assert await read_client_frame(reader) == (0x1, b'"two"')
        writer.write(server_frame(0x1, b"both in"))
        await reader.read()

    async with raw_server(script) as (url, _):
        async with asyncio.timeout(10):
            ws = await connect(url, {}, max_size=MAX)
            protocol = ws._p
            writes: list[bytes] = []
            assert protocol.transport is not None
            real: asyncio.Transport = protocol.transport

            class Counting:
                def write(self, data: bytes) -> None:
                    writes.append(data)
                    real.write(data)

                def __getattr__(self, name: str) -> Any:
                    return getattr(real, name)

            protocol.transport = Counting()  # type: ignore[assignment]
            await ws.send_json({"n": 1}, "two")
            assert len(writes) == 1
            protocol.transport = real
            assert await ws.receive_text() == "both in"
            await ws.close()


async def test_a_refused_handshake_gives_its_status_and_headers() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(b"HTTP/1.1 403 Forbidden\r\ncf-mitigated: challenge\r\nContent-Length: 4\r\n\r\nnope")
        await writer.drain()

    async with raw_server(script) as (url, _):
        with pytest.raises(HandshakeRefused) as refused:
            await connect(url, {}, max_size=MAX)
    assert refused.value.status == 403 and refused.value.headers["CF-Mitigated"] == "challenge"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda head: switching(head, accept="d3Jvbmc="), id="wrong accept"),
        pytest.param(lambda head: switching(head).replace(b"Upgrade: websocket", b"Upgrade: h2c"), id="wrong upgrade"),
        pytest.param(lambda head: b"SSH-2.0-OpenSSH\r\n\r\n", id="not http"),
        pytest.param(lambda head: b"HTTP/1.1 101 OK\r\nbad line\r\n\r\n", id="malformed header"),
        pytest.param(lambda head: b"HTTP/1.1 101 OK\r\n" + b"X: " + b"y" * 70_000, id="endless head"),
    ],
)
async def test_a_broken_handshake_answer_is_a_connection_error(answer: Callable[[bytes], bytes]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(answer(head))
        await writer.drain()
        await reader.read()  # until the client gives up

    async with raw_server(script) as (url, _):
        with pytest.raises(UpstreamConnectionError, match="handshake"):
            await asyncio.wait_for(connect(url, {}, max_size=MAX), 10)


async def test_the_peer_going_away_mid_answer_ends_the_handshake() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(b"HTTP/1.1 101 Swi")

    async with raw_server(script) as (url, _):
        with pytest.raises(UpstreamConnectionError, match="closed"):
            await asyncio.wait_for(connect(url, {}, max_size=MAX), 10)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        pytest.param(server_frame(0x1, b"x", masked=True), "cannot read", id="masked"),
        pytest.param(server_frame(0x1, b"x", rsv=0x40), "cannot read", id="compressed unasked"),
        pytest.param(server_frame(0x0, b"x"), "had not started", id="stray continuation"),
        pytest.param(server_frame(0x1, b"a", fin=False) + server_frame(0x1, b"b"), "inside another", id="nested"),
        pytest.param(server_frame(0x9, b"x", fin=False), "control frame", id="fragmented ping"),
        pytest.param(server_frame(0x9, b"x" * 126), "control frame", id="long ping"),
        pytest.param(server_frame(0x3, b"x"), "unknown kind", id="reserved opcode"),
        pytest.param(server_frame(0x1, b"\xc3\x28"), "not UTF-8", id="bad utf-8"),
        pytest.param(server_frame(0x1, b"x" * 2000), "over 1024 bytes", id="too big"),
        pytest.param(
            server_frame(0x1, b"x" * 1000, fin=False) + server_frame(0x0, b"x" * 100),
            "over 1024 bytes",
            id="too big in fragments",
        ),
        pytest.param(
            bytes((0x81, 0x7F)) + struct.pack(">Q", 1 << 40), "over 1024 bytes", id="refused before it arrives"
        ),
    ],
)
async def test_a_frame_the_client_cannot_take_ends_the_socket(frames: bytes, reason: str) -> None:
    closing: list[tuple[int, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(switching(head) + server_frame(0x1, b"first") + frames)
        closing.append(await read_client_frame(reader))

    async with raw_server(script) as (url, _):
        ws = await connect(url, {}, max_size=1024)
        assert await ws.receive_text() == "first"  # what came before is still handed over
        with pytest.raises(UpstreamConnectionError, match=reason):
            await ws.receive_text()
        with pytest.raises(UpstreamConnectionError):
            await ws.send_json("after")
        await ws.close()
    assert closing and closing[0][0] == 0x8
    assert closing[0][1] == struct.pack(">H", 1009 if "over" in reason else 1002)


async def test_a_dropped_connection_reads_as_closed() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(switching(head) + server_frame(0x1, b"one") + server_frame(0x1, b"tw", fin=False))

    async with raw_server(script) as (url, _):
        ws = await connect(url, {}, max_size=MAX)
        assert await ws.receive_text() == "one"
        assert await ws.receive_text() is None
        await ws.close()


async def test_a_peer_that_never_answers_the_close_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    released = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(switching(head))
        assert (await read_client_frame(reader))[0] == 0x8
        assert await reader.read() == b""  # the client hangs up without an answer
        released.set()

    monkeypatch.setattr(websocket_client, "_CLOSE_TIMEOUT", 0.05)
    async with raw_server(script) as (url, _):
        ws = await connect(url, {}, max_size=MAX)
        await ws.close()
        await asyncio.wait_for(released.wait(), 5)


async def test_a_full_send_buffer_is_waited_for() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(switching(head))
        assert await read_client_frame(reader) == (0x1, b'"queued"')
        writer.write(server_frame(0x1, b"done"))
        await reader.read()

    async with raw_server(script) as (url, _):
        ws = await connect(url, {}, max_size=MAX)
        ws._p.pause_writing()  # as the transport does when its buffer passes the high-water mark
        sending = asyncio.create_task(ws.send_json("queued"))
        await asyncio.sleep(0.01)
        assert not sending.done()
        ws._p.resume_writing()
        await sending
        assert await ws.receive_text() == "done"
        ws._p.transport.abort()  # type: ignore[union-attr]


async def test_headers_with_line_breaks_and_addresses_that_are_not_websockets_are_refused() -> None:
    with pytest.raises(UpstreamConnectionError, match="line break"):
        await connect("ws://127.0.0.1:9/x", {"Cookie": "sso=a\r\nX-Injected: 1"}, max_size=MAX)
    with pytest.raises(UpstreamConnectionError, match="not a WebSocket address"):
        await connect("http://127.0.0.1:9/x", {}, max_size=MAX)


async def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(UpstreamConnectionError, match="could not connect"):
            await connect(f"ws://127.0.0.1:{port}/", {}, max_size=MAX)


async def test_names_are_resolved_once_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    asked: list[str] = []
    real = loop.getaddrinfo

    async def counting(host: Any, port: Any, **kwargs: Any) -> Any:
        asked.append(host)
        return await real(host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counting)
    monkeypatch.setattr(websocket_client, "_NAMES", websocket_client._Names())
    async with peer() as url:
        for _ in range(3):
            ws = await connect(url.replace("127.0.0.1", "localhost"), {}, max_size=MAX)
            await ws.close()
    assert asked.count("localhost") == 1


# -- TLS


def _certificate(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_wss_is_spoken_over_tls_and_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/ws", _peer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    try:
        url = f"wss://localhost:{runner.addresses[0][1]}/ws"
        trusting = ssl.create_default_context(cafile=str(cert))
        ws = await connect(url, {}, max_size=MAX, tls=trusting)
        await ws.send_json("over tls")
        assert await ws.receive_text() == 'echo:"over tls"'
        await ws.close()
        with pytest.raises(UpstreamConnectionError, match="TLS"):
            await connect(url, {}, max_size=MAX)  # the system's trust store does not know this certificate
    finally:
        await runner.cleanup()


# -- frames


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_client_frames_use_the_shortest_length_and_mask_the_payload(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = encode_frame(0x1, payload)
    assert frame[0] == 0x81 and frame[1] & 0x80
    length_bytes = 0 if size < 126 else 2 if size < 65536 else 8
    assert len(frame) == 2 + length_bytes + 4 + size
    key = frame[2 + length_bytes : 6 + length_bytes]
    body = frame[6 + length_bytes :]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(body)) == payload


class _Sink:
    """A transport for the protocol alone: it keeps what is written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


messages = st.lists(st.tuples(st.text(max_size=300), st.integers(1, 4)), max_size=6)


@settings(max_examples=60, deadline=None)
@given(messages=messages, cuts=st.lists(st.integers(1, 400), max_size=30))
def test_frames_are_read_whatever_the_reads_cut_them_into(messages: list[tuple[str, int]], cuts: list[int]) -> None:
    stream = bytearray(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    pings = 0
    for text, parts in messages:
        data = text.encode()
        step = max(1, -(-len(data) // parts))
        pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
        for i, piece in enumerate(pieces):
            stream += server_frame(0x1 if i == 0 else 0x0, piece, fin=i == len(pieces) - 1)
            if i == 0 and len(pieces) > 1:
                stream += server_frame(0x9, b"between")  # a control frame inside a fragmented message
                pings += 1

    async def run() -> list[str]:
        protocol = websocket_client._Protocol(b"GET / HTTP/1.1\r\n\r\n", MAX)
        sink = _Sink()
        protocol.connection_made(sink)  # type: ignore[arg-type]
        at = 0
        for cut in [*cuts, len(stream)]:
            if at < len(stream):
                protocol.data_received(bytes(stream[at : at + cut]))
                at += cut
        while at < len(stream):
            protocol.data_received(bytes(stream[at : at + 512]))
            at += 512
        assert (await protocol.head)[0] == 101
        assert [w[0] for w in sink.written[1:]] == [0x8A] * pings  # each ping answered, nothing else sent
        return list(protocol.messages)

    assert asyncio.run(run()) == [text for text, _ in messages]


async def test_an_address_that_does_not_answer_gives_way_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    real = loop.create_connection
    tried: list[str] = []

    async def connect_or_hang(factory: Any, host: str, port: int, **kwargs: Any) -> Any:
        tried.append(host)
        if host == "::1":
            await asyncio.sleep(60)  # a broken route: the attempt is never answered
        return await real(factory, host, port, **kwargs)

    async def both_families(self: Any, host: str, port: int) -> list[tuple[str, int]]:
        return [("::1", port), ("127.0.0.1", port)]

    monkeypatch.setattr(loop, "create_connection", connect_or_hang)
    monkeypatch.setattr(websocket_client._Names, "addresses", both_families)
    monkeypatch.setattr(websocket_client, "_NEXT_ADDRESS_AFTER", 0.05)
    async with peer() as url:
        ws = await asyncio.wait_for(connect(url, {}, max_size=MAX), 5)
        await ws.send_json("second address")
        assert await ws.receive_text() == 'echo:"second address"'
        await ws.close()
    assert tried == ["::1", "127.0.0.1"]

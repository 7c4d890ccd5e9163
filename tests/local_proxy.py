"""Tiny proxies on loopback for the egress tests: an HTTP proxy (CONNECT tunnels and absolute-form requests) and a
SOCKS5 proxy (no authentication, or a username and password). Each counts the connections it accepted and opens
its own connections from a source address of its own (``127.0.0.N``; Linux routes all of 127/8 to loopback), so
the fake grok.com tells the egresses apart by the address a request comes from, even inside a tunnel."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class LocalProxy:
    """A running proxy: ``url`` to configure, ``source`` the address the target sees, ``connections`` accepted."""

    scheme: str
    source: str
    url: str = ""
    connections: int = 0
    targets: list[str] = field(default_factory=list)  # host:port of each connection it opened

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _splice(
    proxy: LocalProxy,
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    host: str,
    port: int,
    first: bytes,
    reply: bytes,
) -> None:
    """Connect to ``host:port`` from the proxy's source address, answer the client, send ``first`` on, then copy
    both ways until either side closes."""
    reader, writer = client
    upstream_reader, upstream_writer = await asyncio.open_connection(host, port, local_addr=(proxy.source, 0))
    proxy.targets.append(f"{host}:{port}")
    if reply:
        writer.write(reply)
        await writer.drain()
    if first:
        upstream_writer.write(first)
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _http_client(proxy: LocalProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        await _splice(
            proxy, (reader, writer), host.strip("[]"), int(port), b"", b"HTTP/1.1 200 Connection established\r\n\r\n"
        )
        return
    # An absolute-form request (plain http, ws:// included): the target server takes it as it is.
    rest = target.split("://", 1)[1]
    authority = rest.split("/", 1)[0]
    host, _, port = authority.rpartition(":")
    await _splice(proxy, (reader, writer), host.strip("[]"), int(port or 80), head, b"")


async def _socks_client(proxy: LocalProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    version, count = await reader.readexactly(2)
    methods = await reader.readexactly(count)
    if version != 5:
        return
    if 2 in methods:  # username/password: any are accepted
        writer.write(b"\x05\x02")
        await writer.drain()
        _, ulen = await reader.readexactly(2)
        await reader.readexactly(ulen)
        (plen,) = await reader.readexactly(1)
        await reader.readexactly(plen)
        writer.write(b"\x01\x00")
    else:
        writer.write(b"\x05\x00")
    await writer.drain()
    _, command, _, kind = await reader.readexactly(4)
    if kind == 1:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif kind == 3:
        (length,) = await reader.readexactly(1)
        host = (await reader.readexactly(length)).decode()
    else:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    if command != 1:
        writer.write(b"\x05\x07\x00\x01" + bytes(6))
        return
    reply = b"\x05\x00\x00\x01" + ipaddress.IPv4Address(proxy.source).packed + b"\x00\x00"
    await _splice(proxy, (reader, writer), host, port, b"", reply)


@contextlib.asynccontextmanager
async def local_proxy(scheme: str, source: str) -> AsyncIterator[LocalProxy]:
    """Run an ``http`` or ``socks5`` proxy on a free loopback port for the block; its own connections come from
    ``source``."""
    proxy = LocalProxy(scheme, source)
    handle = _http_client if scheme == "http" else _socks_client
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxy.connections += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handle(proxy, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError, asyncio.CancelledError):
            pass  # a client that went away, or the proxy stopping: the connection simply ends
        finally:
            tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy.url = f"{scheme}://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

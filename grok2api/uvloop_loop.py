"""uvloop's event loop, with numeric addresses resolved in place.

``loop.sock_connect`` (how aiohttp connects, through aiohappyeyeballs) resolves its address again with
``getaddrinfo(host, port, family=...)``, no socket type given. uvloop answers such a call without a thread only
when the type is known; otherwise even ``127.0.0.1`` goes to libuv's thread pool and back: about 35 µs of CPU
and 45 µs of waiting per upstream connection, and the gateway opens one per chat turn. Here a numeric host and
port with no type, protocol or flags are answered at once, with the entries the C library gives for them
(stream, datagram, raw, in that order); every other call is uvloop's own. Imported only where uvloop is
installed.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import uvloop

# The types the C library lists for a numeric host when none is asked for, with the protocol of each.
_ALL_TYPES = ((socket.SOCK_STREAM, socket.IPPROTO_TCP), (socket.SOCK_DGRAM, socket.IPPROTO_UDP), (socket.SOCK_RAW, 0))


def _is_numeric(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host.partition("%")[0])  # an IPv6 scope ("fe80::1%eth0") is the C library's to read
    except ValueError:
        return False
    return "%" not in host


class Loop(uvloop.Loop):
    async def getaddrinfo(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        if type or proto or flags or not isinstance(port, int) or not _is_numeric(host):
            return await super().getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)
        # Asked with the stream type, uvloop reads a numeric address itself; the other entries share its address.
        stream = await super().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM, flags=flags)
        return [(fam, kind, protocol, "", address) for fam, _, _, _, address in stream for kind, protocol in _ALL_TYPES]


def new_event_loop() -> Loop:
    return Loop()

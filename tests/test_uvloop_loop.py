"""uvloop's loop with numeric addresses read in place: the same answers as uvloop's own, and no thread for a
connection to a numeric address."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from typing import Any

import pytest

uvloop = pytest.importorskip("uvloop")

from grok2api.uvloop_loop import Loop  # noqa: E402

QUERIES: list[tuple[Any, Any, dict[str, int]]] = [
    ("127.0.0.1", 8080, {}),
    ("127.0.0.1", 8080, {"family": socket.AF_INET}),
    ("127.0.0.1", 8080, {"family": socket.AF_INET6}),  # the wrong family: the same error
    ("::1", 443, {}),
    (b"10.0.0.7", 0, {}),
    ("localhost", 80, {}),  # a name: uvloop's own way
    ("127.0.0.1", 8080, {"type": socket.SOCK_DGRAM}),
    ("127.0.0.1", "http", {}),
    ("fe80::1%lo", 80, {}),
]


async def _answers() -> list[Any]:
    loop = asyncio.get_running_loop()
    out: list[Any] = []
    for host, port, kwargs in QUERIES:
        try:
            out.append(await loop.getaddrinfo(host, port, **kwargs))
        except OSError as exc:
            out.append(type(exc))
    return out


def test_every_address_resolves_as_uvloop_resolves_it() -> None:
    with asyncio.Runner(loop_factory=Loop) as runner:
        mine = runner.run(_answers())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        theirs = runner.run(_answers())
    assert mine == theirs
    assert [kind for _, kind, _, _, _ in mine[0]] == [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW]


CONNECTS = """
import asyncio, os, socket, sys
import uvloop
from grok2api.uvloop_loop import Loop

async def main():
    listening = socket.create_server(("127.0.0.1", 0))  # bound here: the loop resolves nothing for it
    server = await asyncio.start_server(lambda r, w: w.close(), sock=listening)
    port = listening.getsockname()[1]
    for _ in range(20):
        sock = socket.socket()
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        sock.close()
    print(len(os.listdir("/proc/self/task")))

factory = Loop if sys.argv[1] == "mine" else uvloop.new_event_loop
with asyncio.Runner(loop_factory=factory) as runner:
    runner.run(main())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_connecting_to_a_numeric_address_starts_no_thread() -> None:
    def threads(which: str) -> int:
        done = subprocess.run([sys.executable, "-c", CONNECTS, which], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert threads("mine") == 1
    assert threads("uvloop") > 1  # uvloop's own loop asks libuv's thread pool

"""The bench's own HTTP client against aiohttp's server: bodies framed by length or chunked, read as they
arrive, connections kept and reused, and the ways an answer can break."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from grok2api.cli import bench_http
from grok2api.cli.bench_http import HttpClient, HttpError

from harness import serve_app


class Peer:
    def __init__(self) -> None:
        self.connections: set[int] = set()
        self.bodies: list[bytes] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        self.connections.add(id(transport))
        self.bodies.append(await request.read())
        if request.path == "/whole":
            return web.Response(body=b'{"ok":true}', content_type="application/json")
        if request.path == "/close":
            return web.Response(body=b"bye", headers={"Connection": "close"})
        answer = web.StreamResponse()
        await answer.prepare(request)
        await answer.write(b"data: first\n\n")
        if request.path == "/cut":
            transport.abort()
            return answer
        await self.release.wait()  # the second piece waits until the client has read the first
        await answer.write(b"data: second\n\n")
        await answer.write_eof()
        return answer


@asynccontextmanager
async def peer() -> AsyncIterator[tuple[Peer, HttpClient]]:
    state = Peer()
    app = web.Application()
    app.router.add_post("/{name}", state.handle)
    async with serve_app(app) as base:
        host, _, port = base.removeprefix("http://").rpartition(":")
        async with HttpClient(host, int(port)) as client:
            async with asyncio.timeout(10):  # a missing answer fails the test instead of hanging it
                yield state, client


async def test_a_whole_answer_and_the_connection_kept_for_the_next() -> None:
    async with peer() as (state, client):
        for n in range(3):
            async with await client.post("/whole", b'{"n":%d}' % n) as answer:
                assert answer.status == 200
                assert await answer.read() == b'{"ok":true}'
        assert state.bodies == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
        assert len(state.connections) == 1 and len(client.idle) == 1


async def test_a_chunked_answer_is_read_as_it_arrives() -> None:
    async with peer() as (state, client):
        async with await client.post("/stream", b"{}") as answer:
            pieces = answer.chunks()
            assert await anext(pieces) == b"data: first\n\n"  # before the peer wrote the rest
            state.release.set()
            assert b"".join([piece async for piece in pieces]) == b"data: second\n\n"
        async with await client.post("/whole", b"{}") as answer:
            await answer.read()
        assert len(state.connections) == 1  # the streamed answer ended whole: its connection served again


async def test_an_answer_that_closes_the_connection_is_not_reused() -> None:
    async with peer() as (state, client):
        for path in ("/close", "/whole"):
            async with await client.post(path, b"{}") as answer:
                await answer.read()
        assert len(state.connections) == 2


async def test_an_answer_left_unread_gives_its_connection_up() -> None:
    async with peer() as (state, client):
        async with await client.post("/stream", b"{}") as answer:
            assert answer.status == 200
        assert client.idle == []
        state.release.set()
        async with await client.post("/whole", b"{}") as answer:
            assert await answer.read() == b'{"ok":true}'
        assert len(state.connections) == 2


async def test_a_connection_cut_mid_answer_is_an_error() -> None:
    async with peer() as (_, client):
        async with await client.post("/cut", b"{}") as answer:
            with pytest.raises(HttpError, match="mid-answer"):
                await answer.read()
        assert client.idle == []


async def test_an_idle_connection_past_its_time_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    async with peer() as (state, client):
        async with await client.post("/whole", b"{}") as answer:
            await answer.read()
        monkeypatch.setattr(bench_http, "IDLE_SECONDS", 0.0)
        async with await client.post("/whole", b"{}") as answer:
            await answer.read()
        assert len(state.connections) == 2


async def test_nothing_listening_is_an_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(HttpError, match="cannot connect"):
            await HttpClient("127.0.0.1", port).post("/", b"")

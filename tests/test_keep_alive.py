"""``keep_alive``: the idle watch of one connection, against a stand-in for hypercorn's connection (the real
server is exercised in ``test_connections``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from grok2api.keep_alive import IdleTimer


class Worker:
    """hypercorn's worker context: the event set when the worker terminates."""

    def __init__(self) -> None:
        self.terminated = asyncio.Event()


class FakeConnection:
    def __init__(self, keep_alive_timeout: float, context: Worker | None = None) -> None:
        self.config = SimpleNamespace(keep_alive_timeout=keep_alive_timeout)
        self.context = context or Worker()
        self.closed = asyncio.Event()

    async def _initiate_server_close(self) -> None:
        self.closed.set()


async def _nothing() -> None:
    pass


async def test_an_idle_connection_is_closed_when_the_timer_runs_out() -> None:
    conn = FakeConnection(0.05)
    await IdleTimer(conn).restart(None, _nothing)
    async with asyncio.timeout(10):
        await conn.closed.wait()


async def test_a_stopped_timer_closes_nothing_and_a_restart_starts_it_again() -> None:
    conn = FakeConnection(0.05)
    timer = IdleTimer(conn)
    await timer.restart(None, _nothing)
    await timer.stop()
    await asyncio.sleep(0.2)
    assert not conn.closed.is_set()
    await timer.restart(None, _nothing)
    async with asyncio.timeout(10):
        await conn.closed.wait()


async def test_termination_closes_idle_connections_at_once_and_busy_ones_once_answered() -> None:
    worker = Worker()
    idle, busy = FakeConnection(600, worker), FakeConnection(600, worker)
    await IdleTimer(idle).restart(None, _nothing)
    busy_timer = IdleTimer(busy)
    await busy_timer.restart(None, _nothing)
    await busy_timer.stop()  # serving a request when the worker terminates
    worker.terminated.set()
    async with asyncio.timeout(10):
        await idle.closed.wait()
    assert not busy.closed.is_set()
    await busy_timer.restart(None, _nothing)  # its answer is sent: closed at once
    async with asyncio.timeout(10):
        await busy.closed.wait()

"""``write_batching``: what a connection is given during one loop turn leaves in one send, bounded, in order,
and always before the connection is ended."""

from __future__ import annotations

import asyncio
from typing import Any

from grok2api.write_batching import LIMIT, BatchingWriter, flush_now, serving_writer


class RecordingWriter:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self) -> None:
        self.events.append("drain")

    def write_eof(self) -> None:
        self.events.append(f"eof after {len(self.writes)} writes")

    def close(self) -> None:
        self.events.append(f"close after {len(self.writes)} writes")
        self.closing = True

    async def wait_closed(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def _batching() -> tuple[BatchingWriter, RecordingWriter]:
    inner = RecordingWriter()
    return BatchingWriter(inner), inner  # type: ignore[arg-type]


async def test_writes_of_one_loop_turn_leave_together_at_the_next() -> None:
    writer, inner = _batching()
    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    writer.write(b"")
    writer.write(b"body")
    assert inner.writes == []  # held until the loop turns
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    writer.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"next"]


async def test_a_large_batch_goes_at_once_and_order_is_kept() -> None:
    writer, inner = _batching()
    writer.write(b"a")
    writer.write(b"b" * LIMIT)
    assert inner.writes == [b"a" + b"b" * LIMIT]  # past the bound: not held
    writer.write(b"c")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"c"]


async def test_eof_and_close_send_what_is_held_first() -> None:
    writer, inner = _batching()
    writer.write(b"0\r\n\r\n")
    writer.write_eof()
    writer.write(b"late")
    writer.close()
    assert inner.writes == [b"0\r\n\r\n", b"late"]
    assert inner.events == ["eof after 1 writes", "close after 2 writes"]
    writer.write(b"after close")
    await asyncio.sleep(0)
    assert inner.writes == [b"0\r\n\r\n", b"late"]  # a closed connection takes nothing more
    assert writer.get_extra_info("peername") == ("127.0.0.1", 1) and writer.is_closing()


async def test_flush_now_sends_what_the_current_connection_holds_and_nothing_elsewhere() -> None:
    flush_now()  # no connection of a batching server here: nothing to do, nothing raised
    writer, inner = _batching()
    other, other_inner = _batching()
    writer.write(b"first frame")
    other.write(b"another connection's")
    with serving_writer(writer):
        flush_now()
    assert inner.writes == [b"first frame"] and other_inner.writes == []
    with serving_writer(writer):
        await asyncio.create_task(_write_and_flush(writer, b"from a task the connection started"))
    assert inner.writes[-1] == b"from a task the connection started"
    await asyncio.sleep(0)
    assert other_inner.writes == [b"another connection's"]  # at its own next loop turn


async def _write_and_flush(writer: BatchingWriter, data: bytes) -> None:
    writer.write(data)
    flush_now()

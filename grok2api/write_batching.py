"""Bounded write batching for hypercorn's connections: what one connection is given to send during one
turn of the event loop leaves in one ``send`` call.

hypercorn writes each protocol event as it comes: a response's headers, then its body, then the
end of a chunked body, each its own system call and (on loopback, and for most clients) its own
packet. ``BatchingWriter`` keeps what is written during the current loop turn and sends it at the
start of the next one (at once past ``LIMIT`` bytes, and always before the stream is ended or
closed), so a non-stream answer leaves in one send, a stream's headers with its first frames, and
frames that become ready together under load leave together. Back-pressure is unchanged: ``drain``
still waits while the connection's own buffer is full, so a slow client holds up its own stream only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

LIMIT = 64 * 1024  # bytes held for the next loop turn at most; past it they go at once


class BatchingWriter:
    """A ``StreamWriter`` stand-in for hypercorn's ``TCPServer``: ``write`` batches, the rest delegates."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size >= LIMIT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if self._writer.is_closing():
            return  # the connection is going: hypercorn learns it from its next drain or read
        try:
            self._writer.write(data)
        except (ConnectionError, RuntimeError):  # closed under us (uvloop raises, asyncio counts)
            pass

    async def drain(self) -> None:
        await self._writer.drain()

    def write_eof(self) -> None:
        self.flush()
        self._writer.write_eof()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    async def wait_closed(self) -> None:
        await self._writer.wait_closed()

    def is_closing(self) -> bool:
        return self._writer.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._writer.get_extra_info(name, default)


_SERVING: ContextVar[BatchingWriter | None] = ContextVar("grok2api_batching_writer", default=None)


@contextlib.contextmanager
def serving_writer(writer: BatchingWriter) -> Iterator[None]:
    """Make ``writer`` the one ``flush_now`` flushes, in this task and in the tasks it starts (a connection's)."""
    token = _SERVING.set(writer)
    try:
        yield
    finally:
        _SERVING.reset(token)


def flush_now() -> None:
    """Send what the current request's connection holds now instead of at the next loop turn (a stream's first
    frame, say, when more work follows before this task waits). Nothing to do where writes are not batched."""
    writer = _SERVING.get()
    if writer is not None:
        writer.flush()

"""Server-sent events written in the request's own task, and the watch for a client that leaves.

Starlette's ``StreamingResponse`` runs each stream in an anyio task group on ASGI 2.1 servers such as
hypercorn: a task group, a task and a scheduling hop per stream, paid hundreds of times over when
hundreds of streams start together. ``EventStream`` writes from the task that serves the request and keeps
one watcher per request. A slow client pushes back on its own stream only: each write waits while the
server's buffer for that connection is full, and the upstream read for that stream waits with it; the
other streams go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .write_batching import flush_now

T = TypeVar("T")


async def _disconnected(receive: Receive) -> None:
    """Return when the client goes away; the body has been read, so nothing else arrives before that."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ClientLeft(Exception):
    """The client disconnected while ``until_disconnect`` was running its work."""


async def until_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` in this task; if the client disconnects first, cancel it (its cleanup runs as the
    cancellation unwinds it) and raise ClientLeft. The server's notice of the disconnect where ``receive`` can
    have it (``BodyDeadline.watch``), else one watcher task; never a task for the work itself."""
    task = asyncio.current_task()
    assert task is not None
    state = {"running": True, "left": False}

    def gone() -> None:
        if state["running"]:
            state["left"] = True
            task.cancel()

    def read_gone(watcher: asyncio.Future[None]) -> None:
        if not watcher.cancelled() and watcher.exception() is None:
            gone()

    watch = getattr(receive, "watch", None)  # the edge's BodyDeadline has it
    stop: Callable[[], object] | None = watch(gone) if watch is not None else None
    if stop is None:
        watcher = asyncio.ensure_future(_disconnected(receive))
        watcher.add_done_callback(read_gone)
        stop = watcher.cancel
    try:
        return await work
    except BaseException as exc:
        if not state["left"]:
            raise
        if task.cancelling():
            task.uncancel()
        raise ClientLeft from (None if isinstance(exc, asyncio.CancelledError) else exc)
    finally:
        state["running"] = False
        stop()


class EventStream(StreamingResponse):
    """``text/event-stream`` from an async iterator of ready frames (see the module docstring); the
    iterator is closed when the client leaves, and ``background`` runs once the last byte is written."""

    def __init__(
        self,
        frames: Any,
        headers: dict[str, str] | None = None,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(frames, media_type="text/event-stream", headers=headers)
        self.after = background

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await until_disconnect(receive, self._write(send))
        except ClientLeft:
            pass
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()  # a no-op once it ran to its end; else its cleanup runs now
        if self.after is not None:
            await self.after()

    async def _write(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        first = True
        async for frame in self.body_iterator:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            if first:
                # The server sends what it was given at the next loop turn; when the rest of a burst is already
                # in, reading it would not wait, so the headers and first frame would wait behind all of it
                # (and behind the answer's end, when that came too). They leave now instead.
                first = False
                flush_now()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

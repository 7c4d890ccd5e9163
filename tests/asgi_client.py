"""Calling an ASGI app in process, without a server or a socket: ``running(app)`` runs its lifespan, ``call``
sends one HTTP request and collects the whole answer (a streamed one included).

The client stays connected until the answer is complete, so the app's disconnect watch does not fire early.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message


@dataclass
class AsgiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; the last of repeated ones
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[None]:
    """Start ``app``'s lifespan for the block, and shut it down afterwards (failures of either raise)."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await outbox.get()
        await task
        if stopped["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"the app did not stop cleanly: {stopped}")


async def call(
    app: ASGIApp,
    method: str,
    target: str,
    *,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    client: str = "127.0.0.1",
    timeout: float = 30,
) -> AsgiResponse:
    """One request to ``app`` from the address ``client``; ``target`` is a path with an optional query string."""
    url = urlsplit(target)
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if body and not any(k == b"content-length" for k, _ in raw_headers):
        raw_headers.append((b"content-length", str(len(body)).encode()))
    raw_headers.append((b"host", b"testserver"))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": url.path,
        "raw_path": url.path.encode(),
        "query_string": url.query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": (client, 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    response = AsgiResponse(status=0)
    chunks: list[bytes] = []
    complete = asyncio.Event()
    sent_body = False

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await complete.wait()  # connected until the whole answer has arrived
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                complete.set()

    await asyncio.wait_for(app(scope, receive, send), timeout)
    complete.set()
    response.body = b"".join(chunks)
    return response

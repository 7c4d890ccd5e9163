"""A fake grok.com and a gateway (``LiveGateway``) on an event loop of their own, in a background thread, for
synchronous test code that talks HTTP to them (schemathesis' requests): ``with BackgroundGateway(data_dir) as gw``
gives ``gw.url``; ``gw.run(coro_fn)`` runs a coroutine on their loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

T = TypeVar("T")
START_TIMEOUT = 60.0


class BackgroundGateway:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.url = ""
        self.gateway: LiveGateway | None = None
        self.fake: FakeGrok | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="background-gateway", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread, which is waiting for the start
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        fake = FakeGrok()
        await fake.start()
        try:
            async with LiveGateway(self.data_dir, fake.base_url, fake.assets_url, env=self.env) as gateway:
                self.fake, self.gateway, self.url = fake, gateway, gateway.url
                self._ready.set()
                await self._stop.wait()
        finally:
            await fake.stop()

    def run(self, work: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        """Run ``work()`` on the gateway's loop and return its result."""
        assert self._loop is not None

        async def wrapped() -> T:
            return await work()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def __enter__(self) -> BackgroundGateway:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            raise RuntimeError("the background gateway did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

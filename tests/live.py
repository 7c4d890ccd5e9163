"""A real gateway under hypercorn on a loopback port, for end-to-end tests."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
from hypercorn.asyncio import serve
from hypercorn.config import Config

from grok2api.app import create_app
from grok2api.config import BootConfig
from grok2api.services import Services

# The admin password a LiveGateway starts with unless told otherwise. With none configured, a gateway's
# first start generates one and hashes it (about 0.3 s per start): only tests of that path want it.
ADMIN_PASSWORD = "live-test-password"


class LiveGateway:
    def __init__(
        self,
        data_dir: Path,
        upstream: str,
        assets: str,
        env: dict[str, str] | None = None,
        storage_mode: str = "file",
        database_url: str = "",
        admin_password: str = ADMIN_PASSWORD,
    ) -> None:
        """``admin_password=""`` starts with no admin password configured (``env`` may still set one)."""
        environ = {"GROK2API_UPSTREAM_URL": upstream, "GROK2API_ASSETS_URL": assets}
        if admin_password:
            environ["GROK2API_ADMIN_PASSWORD"] = admin_password
        environ.update(env or {})
        self.boot = BootConfig(
            data_dir=data_dir,
            storage_mode=storage_mode,
            database_url=database_url,
            environ=environ,
            admin_password=environ.get("GROK2API_ADMIN_PASSWORD", ""),
        )
        self.services = Services(self.boot)
        self.app = create_app(self.boot, self.services)
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.set_inheritable(True)
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 1
        self._task = asyncio.create_task(
            serve(self.app, config, shutdown_trigger=self._shutdown.wait)  # type: ignore[arg-type]
        )
        self.url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return self.url
                except aiohttp.ClientError:
                    pass
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.05)
        raise RuntimeError("gateway did not start")

    async def __aenter__(self) -> LiveGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._shutdown.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 15)

    async def settings(self, **changes: Any) -> None:
        await self.services.update_settings(changes)

    async def add_accounts(self, *tokens: str, tier: str = "basic") -> None:
        from grok2api.store.base import NewAccount

        await self.services.store.add_accounts([NewAccount(token=t, tier=tier) for t in tokens])
        await self.services.reload(force=True)


# ---- fixtures (re-exported by conftest.py) ----------------------------------------------------

import pytest  # noqa: E402

from grok2api.testing.fake_grok import FakeGrok  # noqa: E402


@pytest.fixture
async def fake() -> Any:
    """A fake grok.com on a loopback port."""
    server = FakeGrok()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def gateway(tmp_path: Path, fake: FakeGrok) -> Any:
    """The real app under hypercorn on SQLite, pointed at the fake; no accounts yet."""
    async with LiveGateway(tmp_path / "data", fake.base_url, fake.assets_url) as gw:
        yield gw


@pytest.fixture
async def client(gateway: LiveGateway) -> Any:
    """The official OpenAI SDK pointed at the gateway (no SDK retries, so failures show)."""
    import openai

    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="not-needed", max_retries=0, timeout=30)
    try:
        yield sdk
    finally:
        await sdk.close()

"""Stand-ins for the services a gateway may use beside grok.com, each a real aiohttp server on loopback:

- ``FakeFlareSolverr``: FlareSolverr's ``POST /v1`` ``request.get``. Its "browser" opens the fake's challenge page
  through the proxy the command names (so the clearance belongs to that egress) with its own User-Agent, and
  answers ``{status:"ok", solution:{cookies, userAgent, …}}``. ``fail`` makes it answer an error instead.
- ``FakeSigner``: a statsig signer, ``POST`` ``{method, path, environment:{metaContent}}`` →
  ``{"x-statsig-id": …}`` (``fake_cloudflare.signed_value``, which the fake accepts with ``signed_statsig``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp import web

from .fake_cloudflare import SOLVE_PATH, signed_value
from .fake_http import json_response

# A browser other than the gateway's own profile: a gateway that keeps its own User-Agent is refused.
FLARESOLVERR_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36"
)


class _LoopbackServer(ABC):
    """A small aiohttp server on a free loopback port; each stand-in gives its routes."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""

    @abstractmethod
    def _app(self) -> web.Application: ...

    async def start(self) -> str:
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


def _proxy_url(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if not isinstance(spec, dict) or not spec.get("url"):
        return ""
    url = str(spec["url"])
    if spec.get("username"):
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://{spec['username']}:{spec.get('password', '')}@{rest}"
    return url


class FakeFlareSolverr(_LoopbackServer):
    def __init__(self, user_agent: str = FLARESOLVERR_UA) -> None:
        super().__init__()
        self.user_agent = user_agent
        self.commands: list[dict[str, Any]] = []
        self.fail: str | None = None  # an error message to answer with instead of solving

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1", self._command)
        return app

    async def _command(self, request: web.Request) -> web.StreamResponse:
        command = msgspec.json.decode(await request.read())
        self.commands.append(command)
        if command.get("cmd") != "request.get" or not command.get("url"):
            return json_response(500, {"status": "error", "message": "Request parameter 'cmd' is mandatory."})
        if self.fail is not None:
            return json_response(500, {"status": "error", "message": self.fail})
        target = urlsplit(str(command["url"]))
        solve_url = f"{target.scheme}://{target.netloc}{SOLVE_PATH}"
        proxy = _proxy_url(command.get("proxy"))
        connector: aiohttp.BaseConnector | None = None
        if proxy.startswith("socks"):
            from aiohttp_socks import ProxyConnector

            connector, proxy = ProxyConnector.from_url(proxy), ""
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as browser:
            async with browser.get(solve_url, headers={"User-Agent": self.user_agent}, proxy=proxy or None) as resp:
                cookies = [
                    {"name": name, "value": morsel.value, "domain": target.hostname, "path": "/"}
                    for name, morsel in resp.cookies.items()
                ]
        solution = {"url": command["url"], "status": 200, "cookies": cookies, "userAgent": self.user_agent}
        return json_response(200, {"status": "ok", "message": "Challenge solved!", "solution": solution})


class FakeSigner(_LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/sign", self._sign)
        return app

    async def _sign(self, request: web.Request) -> web.StreamResponse:
        body = msgspec.json.decode(await request.read())
        self.calls.append(body)
        meta = str((body.get("environment") or {}).get("metaContent") or "")
        return json_response(200, {"x-statsig-id": signed_value(str(body["method"]), str(body["path"]), meta)})

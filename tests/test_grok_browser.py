"""The transports to grok.com side by side: GrokClient's HTTP calls against a loopback server over aiohttp
and over curl_cffi impersonating Chrome, the settings that choose them, the User-Agent that follows the
profile, and a whole chat through the gateway on curl_cffi."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web

from grok2api.grok import browser
from grok2api.grok.browser import CurlTransport, SelectedTransport, chrome_profiles, newest_chrome
from grok2api.grok.client import GrokClient
from grok2api.grok.errors import UpstreamConnectionError, UpstreamHTTPError
from grok2api.grok.headers import api_headers, asset_headers, ws_headers
from grok2api.grok.transport import Transport
from grok2api.settings import RuntimeSettings, SettingsError, validate_update
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway, serve_app

ASSET = b"\x89PNG" + bytes(range(256)) * 64


class Grok:
    """A few grok.com HTTP routes; each request is kept with its headers (and its form, for uploads)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.form: dict[str, Any] = {}
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/rest/app-chat/conversations/new", self.chat)
        app.router.add_post("/rest/rate-limits", self.limits)
        app.router.add_post("/http/upload-file-v2/direct", self.upload)
        app.router.add_get("/assets/{name}", self.asset)
        return app

    def _keep(self, request: web.Request) -> None:
        self.seen.append((request.path, dict(request.headers)))

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self._keep(request)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for token in ("Hel", "lo"):
            await resp.write(b'{"result":{"response":{"token":"%s"}}}\n' % token.encode())
            await asyncio.sleep(0.01)
        await resp.write(b'{"result":{"response":{"modelResponse":{"message":"Hello"}}}}')
        await resp.write_eof()
        return resp

    async def limits(self, request: web.Request) -> web.Response:
        self._keep(request)
        body = await request.json()
        if body.get("modelName") == "heavy":
            return web.json_response(
                {"error": {"code": 8, "message": "Too many"}}, status=429, headers={"Retry-After": "9"}
            )
        # A cookie this answer sets must never come back on a later call (another account's, perhaps).
        resp = web.json_response({"remainingQueries": 7, "totalQueries": 20, "windowSizeSeconds": 7200})
        resp.set_cookie("__cf_bm", "from-the-answer")
        return resp

    async def upload(self, request: web.Request) -> web.Response:
        self._keep(request)
        form = await request.post()
        file = form["file"]
        assert isinstance(file, web.FileField)
        self.form = {
            "file": (file.filename, file.content_type, file.file.read()),
            "file_source": form.get("file_source"),
        }
        return web.json_response({"fileMetadata": {"fileMetadataId": "file-1", "fileUri": "users/u/file-1"}})

    async def asset(self, request: web.Request) -> web.Response:
        self._keep(request)
        return web.Response(body=ASSET, content_type="image/png")


@pytest.fixture
async def grok() -> AsyncIterator[Grok]:
    server = Grok()
    async with serve_app(server.app()) as base:
        server.url = base
        yield server


def settings_for(grok: Grok, **changes: Any) -> RuntimeSettings:
    return RuntimeSettings(upstream_url=grok.url, assets_url=f"{grok.url}/assets", **changes)


async def test_http_calls_over_either_transport(grok: Grok, transport: Transport) -> None:
    client = GrokClient(transport)
    settings = settings_for(grok, browser_profile="chrome146")
    texts = [e for batch in [b async for b in client.stream_chat("tok-1", {"message": "hi"}, settings)] for e in batch]
    assert texts, "the chat stream yields events"
    limits = await client.rate_limits("tok-1", "fast", settings)
    assert (limits.remaining, limits.total, limits.window_seconds) == (7, 20, 7200)
    await client.rate_limits("tok-2", "fast", settings)
    with pytest.raises(UpstreamHTTPError) as info:
        await client.rate_limits("tok-1", "heavy", settings)
    assert info.value.status == 429 and "Too many" in info.value.body and info.value.retry_after == 9
    assert await client.upload("tok-1", "a.png", "image/png", "iVBORw0K", settings, source="SRC") == (
        "file-1",
        "users/u/file-1",
    )
    assert grok.form == {"file": ("a.png", "image/png", b"\x89PNG\r\n"), "file_source": "SRC"}
    assert await client.download("tok-1", "/x.png", settings) == (ASSET, "image/png")

    paths = [path for path, _ in grok.seen]
    assert paths == [
        "/rest/app-chat/conversations/new",
        "/rest/rate-limits",
        "/rest/rate-limits",
        "/rest/rate-limits",
        "/http/upload-file-v2/direct",
        "/assets/x.png",
    ]
    for _, headers in grok.seen:
        assert "Chrome/146.0.0.0" in headers["User-Agent"]
        assert "__cf_bm" not in headers.get("Cookie", "")
        assert headers["Cookie"].startswith("sso-rw=tok-") or "sso=tok-" in headers["Cookie"]
    assert grok.seen[2][1]["Cookie"].startswith("sso-rw=tok-2")


async def test_connection_trouble_is_a_connection_error(transport: Transport) -> None:
    client = GrokClient(transport)
    settings = RuntimeSettings(upstream_url="http://127.0.0.1:9", assets_url="http://127.0.0.1:9")
    with pytest.raises(UpstreamConnectionError, match="could not connect"):
        await client.rate_limits("tok", "fast", settings)
    with pytest.raises(UpstreamConnectionError, match="could not connect"):
        async for _ in client.stream_chat("tok", {}, settings):
            pass


async def test_curl_cffi_sends_only_the_headers_it_is_given(grok: Grok) -> None:
    """No impersonation defaults of its own: the User-Agent and Sec-Ch-Ua grok2api builds are the ones sent."""
    transport = CurlTransport("chrome151")
    try:
        answer = await transport.request("GET", f"{grok.url}/assets/y.png", {"User-Agent": "UA-1", "X-A": "1"})
    finally:
        await transport.close()
    assert answer.status == 200 and answer.body == ASSET
    ((_, headers),) = grok.seen
    assert headers["User-Agent"] == "UA-1" and headers["X-A"] == "1" and "sec-ch-ua" not in headers


async def test_the_selected_transport_follows_the_settings() -> None:
    current = RuntimeSettings(upstream_transport="aiohttp")
    selected = SelectedTransport(lambda: current)
    try:
        assert selected.current() is selected.aiohttp
        current = RuntimeSettings(upstream_transport="curl_cffi", browser_profile="chrome151")
        chosen = selected.current()
        assert isinstance(chosen, CurlTransport) and chosen.profile == "chrome151"
        assert selected.current() is chosen
        current = RuntimeSettings(upstream_transport="auto")
        assert isinstance(selected.current(), CurlTransport)  # curl_cffi is installed with the dev extra
        session, proxy = selected.session("")  # other hosts stay on aiohttp
        assert proxy is None and session is selected.aiohttp.session("")[0]
    finally:
        await selected.close()


def test_auto_is_aiohttp_without_curl_cffi(monkeypatch: pytest.MonkeyPatch) -> None:
    auto = RuntimeSettings()
    assert auto.upstream_transport == "auto"  # the default
    assert auto.transport_name() == "curl_cffi"  # installed with the dev extra
    monkeypatch.setattr(browser, "available", lambda: False)
    assert auto.transport_name() == "aiohttp"
    assert RuntimeSettings(upstream_transport="curl_cffi").transport_name() == "curl_cffi"


def test_browser_profile_is_validated_against_curl_cffi() -> None:
    assert "chrome146" in chrome_profiles() and newest_chrome() in chrome_profiles()
    assert validate_update(RuntimeSettings(), {"browser_profile": "chrome151"}) == {"browser_profile": "chrome151"}
    with pytest.raises(SettingsError) as info:
        validate_update(RuntimeSettings(), {"browser_profile": "chrome999"})
    message = info.value.errors["browser_profile"]
    assert "cannot impersonate chrome999" in message and f"the newest Chrome it has is {newest_chrome()}" in message
    with pytest.raises(SettingsError) as info:
        validate_update(RuntimeSettings(), {"browser_profile": "firefox133"})
    assert "must name a Chrome target" in info.value.errors["browser_profile"]
    with pytest.raises(SettingsError) as info:
        validate_update(RuntimeSettings(), {"upstream_transport": "requests"})
    assert "upstream_transport" in info.value.errors


def test_an_unknown_default_falls_back_to_the_newest_chrome(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "chrome_profiles", lambda: ("chrome120", "chrome131"))
    settings = RuntimeSettings()  # the default profile is accepted even by an older curl_cffi
    assert CurlTransport(settings.browser_profile).profile == "chrome131"
    assert "Chrome/131.0.0.0" in api_headers("tok", settings)["User-Agent"]


def test_the_user_agent_names_the_profiles_chrome() -> None:
    settings = RuntimeSettings(browser_profile="chrome151_macos")
    api = api_headers("tok", settings)
    assert "Chrome/151.0.0.0" in api["User-Agent"]
    assert 'v="151"' in api["Sec-Ch-Ua"] and 'v="146"' not in api["Sec-Ch-Ua"]
    assert "Chrome/151.0.0.0" in asset_headers("tok", settings)["User-Agent"]
    assert "Chrome/151.0.0.0" in ws_headers("tok", "uid", settings)["User-Agent"]
    assert "Chrome/146.0.0.0" in api_headers("tok", RuntimeSettings())["User-Agent"]


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {"GROK2API_UPSTREAM_TRANSPORT": "curl_cffi", "GROK2API_BROWSER_PROFILE": "chrome151"}


async def test_a_chat_through_the_gateway_on_curl_cffi(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-curl")
    answer = await client.chat.completions.create(model="grok-3-fast", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    (session,) = fake.mgw_sessions()
    assert "Chrome/151.0.0.0" in {k.lower(): v for k, v in session.headers.items()}["user-agent"]
    assert session.refused is None

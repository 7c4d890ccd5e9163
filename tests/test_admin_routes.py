"""The admin's two mounted apps answer their own errors: admin pages under /manage, the
``{success, message, code}`` envelope under /api; the OpenAI API keeps its JSON errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from starlette.responses import Response
from starlette.routing import Match

from grok2api.admin import dashboard_query, keys_ops
from grok2api.admin.routes import SegmentMount
from grok2api.admin.sessions import AdminAuth
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

PASSWORD = "routes-test-password"
HTMX = {"HX-Request": "true"}


@pytest.fixture
async def gw(tmp_path: Path, fake: FakeGrok) -> AsyncIterator[LiveGateway]:
    async with LiveGateway(
        tmp_path / "data", fake.base_url, fake.assets_url, env={"GROK2API_ADMIN_PASSWORD": PASSWORD}
    ) as gateway:
        yield gateway


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def signed_in(gw: LiveGateway) -> dict[str, str]:
    """The Cookie header of a signed-in browser."""
    result = await AdminAuth(gw.services).login("admin", PASSWORD, "127.0.0.1")
    assert result.token
    return {"Cookie": f"g2a_admin={result.token}"}


def boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("secret detail from deep inside")


def test_segment_mount_takes_only_its_own_paths() -> None:
    mount = SegmentMount(Response(), ("manage", "login"), name="admin")

    def match(path: str, kind: str = "http", root_path: str = "") -> Match:
        return mount.matches({"type": kind, "path": root_path + path, "root_path": root_path})[0]

    assert match("/manage") == match("/manage/accounts/1/edit") == match("/login") == Match.FULL
    assert match("/manage", root_path="/gateway") == Match.FULL  # served below a prefix
    assert match("/managex") == match("/v1/models") == match("/") == match("/api/login") == Match.NONE
    assert match("/manage", kind="websocket") == Match.NONE


async def test_unknown_admin_page_is_an_admin_page(gw: LiveGateway, http: aiohttp.ClientSession) -> None:
    async with http.get(gw.url + "/manage/nothing-here") as resp:
        page = await resp.text()
        assert resp.status == 404 and resp.content_type == "text/html"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "<title>Page not found · grok2api</title>" in page and "There is nothing at /manage/nothing-here." in page
    assert 'href="/static/app.css"' in page and 'href="/manage/accounts"' in page  # the admin's layout
    assert 'id="logout"' not in page and "hx-headers" not in page  # signed out: no user, no CSRF token

    cookie = await signed_in(gw)
    async with http.get(gw.url + "/manage/accounts/1/nothing", headers=cookie) as resp:
        page = await resp.text()
        assert resp.status == 404 and 'id="logout"' in page and '"X-CSRF-Token": "' in page
    async with http.get(gw.url + "/manage/nothing-here", headers={**cookie, **HTMX}) as resp:
        # htmx shows the notice as a toast: no whole page around it.
        fragment = await resp.text()
        assert resp.status == 404 and fragment.startswith('<p class="notice error"') and "<html" not in fragment


async def test_wrong_method_under_manage_is_an_admin_page(gw: LiveGateway, http: aiohttp.ClientSession) -> None:
    async with http.delete(gw.url + "/manage/accounts") as resp:
        page = await resp.text()
        allowed = resp.headers["Allow"]
        assert resp.status == 405 and resp.content_type == "text/html" and set(allowed.split(", ")) == {"GET", "HEAD"}
    assert "Method Not Allowed" in page and f"DELETE is not allowed on /manage/accounts; use {allowed}." in page


async def test_admin_server_error_is_a_logged_admin_page(
    gw: LiveGateway, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(keys_ops, "usage_by_key", boom)
    cookie = await signed_in(gw)
    with caplog.at_level(logging.INFO, logger="grok2api"):
        async with http.get(gw.url + "/manage/keys", headers=cookie) as resp:
            page = await resp.text()
            assert resp.status == 500 and resp.content_type == "text/html"
        async with http.get(gw.url + "/manage/keys", headers={**cookie, **HTMX}) as resp:
            fragment = await resp.text()
            assert resp.status == 500 and "<html" not in fragment and "it has been logged" in fragment
    assert "Something went wrong" in page and 'href="/static/app.css"' in page
    assert "Traceback" not in page and "secret detail" not in page
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 2  # once per request, not again by the gateway's own handler
    assert all(r.name == "grok2api.admin" and "GET /manage/keys" in r.getMessage() for r in logged)


async def test_openai_api_keeps_its_json_errors(gw: LiveGateway, http: aiohttp.ClientSession) -> None:
    async with http.get(gw.url + "/v1/nothing-here") as resp:
        body = await resp.json()
        assert resp.status == 404 and body["error"]["code"] == "not_found"
    async with http.get(gw.url + "/nothing-here") as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


async def test_json_admin_api_errors_stay_json(
    gw: LiveGateway, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with http.post(gw.url + "/api/login", json={"username": "admin", "password": PASSWORD}) as resp:
        bearer = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    async with http.get(gw.url + "/api/nothing-here", headers=bearer) as resp:
        body = await resp.json()
        assert resp.status == 404 and body == {
            "success": False,
            "message": "There is nothing at /api/nothing-here.",
            "code": "NOT_FOUND",
        }
    async with http.get(gw.url + "/api/tokens/add", headers=bearer) as resp:
        body = await resp.json()
        assert resp.status == 405 and body["code"] == "METHOD_NOT_ALLOWED" and resp.headers["Allow"] == "POST"

    monkeypatch.setattr(dashboard_query, "summarize", boom)
    with caplog.at_level(logging.ERROR, logger="grok2api"):
        async with http.get(gw.url + "/api/stats", headers=bearer) as resp:
            body = await resp.json()
            assert resp.status == 500 and resp.content_type == "application/json"
    assert (body["success"], body["code"]) == (False, "INTERNAL_ERROR") and "secret" not in body["message"]
    assert [r.name for r in caplog.records if r.exc_info] == ["grok2api.admin"]


async def test_a_trailing_slash_or_an_empty_id_is_a_404_not_a_redirect(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession() as http:
        for method, path in [
            ("POST", "/manage/cache/clear/"),
            ("POST", "/manage/accounts//edit"),
            ("GET", "/api/keys/"),
        ]:
            async with http.request(method, gateway.url + path, allow_redirects=False) as resp:
                assert resp.status == 404, (path, resp.status)

"""App assembly: logging set-up, health, unknown routes."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
from pathlib import Path

import aiohttp
import pytest

from grok2api.after_response import drain
from grok2api.logs import setup_logging, stop_writing, writer_handlers
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway


def test_log_file_rotates_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    monkeypatch.setattr(root, "handlers", [])
    try:
        setup_logging(log_file=str(tmp_path / "logs" / "app.log"))
        logging.getLogger("grok2api.test").warning("hello file")
        file_handlers = [h for h in writer_handlers() if isinstance(h, logging.handlers.RotatingFileHandler)]
        assert len(file_handlers) == 1 and file_handlers[0].maxBytes == 10 * 1024 * 1024
        stop_writing()  # what was queued is written, and the writer's handlers go on the root logger
        assert "hello file" in (tmp_path / "logs" / "app.log").read_text()
        assert file_handlers[0] in root.handlers
    finally:
        for h in root.handlers:
            h.close()
        root.handlers = saved


async def test_health_and_unknown_routes(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/healthz") as r:
            body = await r.json()
            assert r.status == 200 and body["status"] == "ok" and body["storage"] == "sqlite"
        async with http.get(f"{gateway.url}/health") as r:
            assert r.status == 200
        async with http.get(f"{gateway.url}/v1/nothing-here") as r:
            err = (await r.json())["error"]
            assert r.status == 404 and err["code"] == "not_found" and set(err) == {"message", "type", "param", "code"}
        async with http.get(f"{gateway.url}/", allow_redirects=False) as r:
            assert r.status == 307 and r.headers["location"].endswith("/manage")
        async with http.get(f"{gateway.url}/docs") as r:
            assert r.status == 404  # no published API schema pages


async def test_wrong_method_names_the_allowed_ones(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/v1/chat/completions") as r:
        err = (await r.json())["error"]
        assert r.status == 405 and r.headers["Allow"] == "POST"
        assert err["code"] == "method_not_allowed" and "POST" in err["message"]


async def test_cors_for_browser_chat_uis_on_v1_only(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    origin = {"Origin": "http://localhost:3000"}
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
    }
    async with aiohttp.ClientSession() as http:
        async with http.options(f"{gateway.url}/v1/chat/completions", headers=preflight) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
            assert "Access-Control-Allow-Credentials" not in r.headers  # the bearer key is the only credential
        body = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "hi"}]}
        async with http.post(f"{gateway.url}/v1/chat/completions", json=body, headers=origin) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        async with http.get(f"{gateway.url}/v1/models", headers=origin) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        await gateway.settings(api_key="sk-test")
        async with http.get(f"{gateway.url}/v1/models", headers=origin) as r:
            assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == "*"  # the UI can show why
        # the admin and its JSON API stay same-origin
        for path in ("/api/login", "/manage", "/login"):
            async with http.options(f"{gateway.url}{path}", headers=preflight) as r:
                assert "Access-Control-Allow-Origin" not in r.headers, path
            async with http.get(f"{gateway.url}{path}", headers=origin, allow_redirects=False) as r:
                assert "Access-Control-Allow-Origin" not in r.headers, path


async def test_a_client_that_leaves_mid_upload_is_not_an_error(
    gateway: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    port = int(gateway.url.rsplit(":", 1)[1])
    for path in ("/v1/chat/completions", "/v1/images/generations"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        writer.write(head.encode() + b'{"model": ')  # and then the client leaves
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await asyncio.sleep(0.3)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/healthz") as r:
        assert r.status == 200


async def test_prometheus_metrics(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok-m1", "tok-m2")
    fake.push_fault("500")  # one failed attempt, then failover succeeds
    async with aiohttp.ClientSession() as http:
        payload = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "hi"}]}
        async with http.post(f"{gateway.url}/v1/chat/completions", json=payload) as r:
            assert r.status == 200
        await drain()  # the answer's settlement (which frees its account) runs after its last byte
        async with http.get(f"{gateway.url}/metrics") as r:
            assert r.status == 200 and r.content_type == "text/plain"
            text = await r.text()
    assert 'grok2api_requests_total{model="grok-3-fast",outcome="ok"} 1' in text
    assert 'grok2api_upstream_failures_total{kind="server"} 1' in text
    assert 'grok2api_accounts{state="active",tier="basic"} 2' in text
    assert "grok2api_in_flight 0" in text
    await gateway.settings(api_key="sk-metrics")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/metrics") as r:
            assert r.status == 401
        async with http.get(f"{gateway.url}/metrics", headers={"Authorization": "Bearer sk-metrics"}) as r:
            assert r.status == 200

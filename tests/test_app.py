"""App assembly: logging set-up, health, unknown routes."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import aiohttp
import pytest

from grok2api.app import setup_logging

from live import LiveGateway


def test_log_file_rotates_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    monkeypatch.setattr(root, "handlers", [])
    try:
        setup_logging(str(tmp_path / "logs" / "app.log"))
        logging.getLogger("grok2api.test").warning("hello file")
        file_handlers = [h for h in root.handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
        assert len(file_handlers) == 1 and file_handlers[0].maxBytes == 10 * 1024 * 1024
        file_handlers[0].flush()
        assert "hello file" in (tmp_path / "logs" / "app.log").read_text()
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

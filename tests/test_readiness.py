"""GET /readyz: the store answers, its schema is current, the process is not draining; accounts are reported only."""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import text

from grok2api.store.guard import GuardedStore
from grok2api.store.migrate import head_revision
from grok2api.store.sql import SqlStore

from harness import LiveGateway


async def _readyz(gateway: LiveGateway) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(gateway.url + "/readyz") as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def test_a_fresh_gateway_without_accounts_is_ready(gateway: LiveGateway) -> None:
    status, _, body = await _readyz(gateway)
    assert status == 200 and body["status"] == "ready"
    checks = body["checks"]
    assert checks["store"] == {"ok": True, "kind": "sqlite"}
    assert checks["migrations"]["ok"] is True and checks["migrations"]["current"] == checks["migrations"]["expected"]
    assert checks["accounts"] == {"ok": False, "usable": 0, "total": 0, "gating": False}
    await gateway.add_accounts("tok-ready")
    _, _, body = await _readyz(gateway)
    assert body["checks"]["accounts"] == {"ok": True, "usable": 1, "total": 1, "gating": False}


async def test_a_schema_behind_this_code_is_not_ready(gateway: LiveGateway) -> None:
    guarded = gateway.services.store
    assert isinstance(guarded, GuardedStore) and isinstance(guarded.inner, SqlStore)
    async with guarded.inner.engine.begin() as conn:  # e.g. an old backup restored under a running gateway
        await conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    status, headers, body = await _readyz(gateway)
    assert status == 503 and int(headers["Retry-After"]) > 0
    assert body["status"] == "not_ready"
    assert body["checks"]["migrations"] == {"ok": False, "current": "0003", "expected": head_revision()}


async def test_a_draining_process_is_not_ready_and_refuses_new_requests(gateway: LiveGateway) -> None:
    gateway.services.traffic.begin_drain()
    status, _, body = await _readyz(gateway)
    assert status == 503 and body["status"] == "draining"
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/healthz") as resp:
            assert resp.status == 200  # still alive
        async with http.get(gateway.url + "/v1/models") as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
            assert (await resp.json())["error"]["code"] == "shutting_down"
        async with http.get(gateway.url + "/api/tokens") as resp:
            assert resp.status == 503
            assert await resp.json() == {
                "success": False,
                "message": (await resp.json())["message"],
                "code": "SHUTTING_DOWN",
            }
        async with http.get(gateway.url + "/manage") as resp:
            assert resp.status == 503 and resp.headers["Content-Type"].startswith("text/html")

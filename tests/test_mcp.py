"""``POST /mcp``: the ask_grok tool over the MCP streamable HTTP transport."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway, upstream_chats


async def rpc(
    gateway: LiveGateway,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    id_: int | None = 1,
) -> tuple[int, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if id_ is not None:
        message["id"] = id_
    headers = {"Accept": "application/json, text/event-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as http, http.post(f"{gateway.url}/mcp", json=message, headers=headers) as r:
        body = await r.json() if r.content_type == "application/json" else None
        return r.status, body


async def test_initialize_list_and_call(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok-mcp")
    status, body = await rpc(
        gateway,
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    )
    assert status == 200 and body["result"]["serverInfo"]["name"] == "grok2api"
    assert (await rpc(gateway, "notifications/initialized", id_=None))[0] == 202
    status, body = await rpc(gateway, "tools/list")
    (tool,) = body["result"]["tools"]
    assert tool["name"] == "ask_grok"
    model = tool["inputSchema"]["properties"]["model"]
    assert model["default"] == "grok-fast"  # the modes by their public ids, the earlier ids as aliases
    assert {"grok-fast", "grok-auto", "grok-expert", "grok-heavy", "grok-3-fast", "grok-4-heavy"} <= set(model["enum"])
    status, body = await rpc(
        gateway, "tools/call", {"name": "ask_grok", "arguments": {"query": "what is up", "system_prompt": "be brief"}}
    )
    assert status == 200 and body["result"]["isError"] is False
    assert body["result"]["content"][0]["text"].startswith("Hello! You said:")
    (session,) = fake.mgw_sessions("tok-mcp")
    (chunk,) = session.input_chunks
    assert chunk["text"]["text"] == "System: be brief\n\nUser: what is up"
    assert session.mode == "fast"  # the default model


async def test_errors_are_reported_in_band(gateway: LiveGateway, fake: FakeGrok) -> None:
    status, body = await rpc(gateway, "tools/call", {"name": "ask_grok", "arguments": {"query": "hi"}})
    assert status == 200 and body["result"]["isError"] is True
    assert "add" in body["result"]["content"][0]["text"].lower()  # no accounts: says to add some
    status, body = await rpc(gateway, "tools/call", {"name": "ask_grok", "arguments": {"query": "hi", "model": "x"}})
    assert body["result"]["isError"] is True and "does not exist" in body["result"]["content"][0]["text"]
    status, body = await rpc(gateway, "nope/method")
    assert body["error"]["code"] == -32601
    status, body = await rpc(gateway, "tools/call", {"name": "other"})
    assert body["error"]["code"] == -32602
    async with aiohttp.ClientSession() as http, http.post(f"{gateway.url}/mcp", data=b"{nope") as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == -32700
    assert upstream_chats(fake) == []


async def test_api_key_is_checked_live(gateway: LiveGateway) -> None:
    assert (await rpc(gateway, "ping"))[0] == 200
    await gateway.settings(api_key="sk-mcp")
    assert (await rpc(gateway, "ping"))[0] == 401
    assert (await rpc(gateway, "ping", key="wrong"))[0] == 401
    status, body = await rpc(gateway, "ping", key="sk-mcp")
    assert status == 200 and body["result"] == {}


# aiohttp warns (ResourceWarning) about sending a body this large from bytes; the 33 MiB is the point here.
@pytest.mark.filterwarnings("ignore:Sending a large body directly with raw bytes:ResourceWarning")
async def test_oversized_and_deeply_nested_bodies(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/mcp", data=b"[" * 100_000) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == -32700
        big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * (33 * 1024 * 1024) + b'"}}'
        async with http.post(f"{gateway.url}/mcp", data=big) as r:
            assert r.status == 413

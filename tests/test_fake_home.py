"""The fake grok.com's home page, the session answers the doctor's tests inject, and its Cloudflare's ``__cf_bm``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from grok2api.testing.fake_grok import HOME_PATH, SESSION_PATH, FakeGrok


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_home_page_and_its_refusals(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    async with http.get(fake.base_url + HOME_PATH) as resp:
        assert resp.status == 200 and resp.content_type == "text/html" and "<title>Grok</title>" in await resp.text()
    fake.push_fault("home-403-cf")
    async with http.get(fake.base_url + HOME_PATH) as resp:
        assert resp.status == 403 and resp.headers["cf-mitigated"] == "challenge"
        assert "Just a moment" in await resp.text()
    fake.push_fault("home-403")
    async with http.get(fake.base_url + HOME_PATH) as resp:
        assert resp.status == 403 and (await resp.json())["error"]["code"] == 7
    fake.require_cf_clearance = "cf-ok"
    async with http.get(fake.base_url + HOME_PATH) as resp:
        assert resp.status == 403 and resp.headers["cf-mitigated"] == "challenge"
    async with http.get(fake.base_url + HOME_PATH, headers={"Cookie": "cf_clearance=cf-ok"}) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        ("auth-unauthenticated", {"status": "unauthenticated"}),
        ("auth-blocked", {"status": "blocked"}),
        ("auth-shape", {"status": "authenticated"}),
    ],
)
async def test_session_faults(fake: FakeGrok, http: aiohttp.ClientSession, fault: str, answer: dict[str, str]) -> None:
    fake.push_fault(fault)
    cookie = {"Cookie": "sso=tok-home-1"}
    async with http.get(fake.base_url + SESSION_PATH, headers=cookie) as resp:
        body = await resp.json()
        assert resp.status == 200 and answer.items() <= body.items() and "session" not in body
    async with http.get(fake.base_url + SESSION_PATH, headers=cookie) as resp:  # one use, then back to normal
        assert (await resp.json())["session"]["userId"] == fake.user_id("tok-home-1")


async def test_bot_management_sets_a_cf_bm_per_egress_until_it_is_presented(
    fake: FakeGrok, http: aiohttp.ClientSession
) -> None:
    async with http.get(fake.base_url + HOME_PATH) as resp:
        assert "Set-Cookie" not in resp.headers  # off by default
    fake.cloudflare.bot_management = True
    async with http.get(fake.base_url + HOME_PATH) as resp:
        [cookie] = resp.headers.getall("Set-Cookie")
    issued = fake.cloudflare.bot_cookies["127.0.0.1"]
    assert cookie.startswith(f"__cf_bm={issued}; Path=/; Max-Age=1800")
    async with http.get(fake.base_url + SESSION_PATH, headers={"Cookie": f"sso=tok-a; __cf_bm={issued}"}) as resp:
        assert "Set-Cookie" not in resp.headers  # presented: nothing to set
    fake.cloudflare.rotate()
    async with http.get(fake.base_url + SESSION_PATH, headers={"Cookie": f"sso=tok-a; __cf_bm={issued}"}) as resp:
        assert resp.headers["Set-Cookie"].startswith(f"__cf_bm={fake.cloudflare.bot_cookies['127.0.0.1']};")
    assert fake.cloudflare.bot_cookies["127.0.0.1"] != issued
    assert [(path, bm) for _, path, bm in fake.cloudflare.presented] == [
        (HOME_PATH, ""),
        (SESSION_PATH, issued),
        (SESSION_PATH, issued),
    ]

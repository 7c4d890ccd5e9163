"""Browser-like headers, x-statsig-id and the account cookie."""

from __future__ import annotations

import base64
import re
from typing import Any

import openai
import pytest

from grok2api.grok.headers import (
    USER_AGENT,
    api_headers,
    asset_headers,
    cookie,
    normalize_token,
    statsig_id,
    ws_cookie,
    ws_headers,
)
from grok2api.settings import RuntimeSettings
from grok2api.testing.fake_grok import TINY_JPEG, FakeGrok

from harness import LiveGateway

JPEG = "data:image/jpeg;base64," + base64.b64encode(TINY_JPEG).decode()


def decoded(value: str) -> str:
    return base64.b64decode(value).decode()


def test_fixed_statsig_uses_the_current_prefix() -> None:
    assert decoded(statsig_id(RuntimeSettings())).startswith("x1:TypeError")
    custom = base64.b64encode(b"x1:custom").decode()
    assert statsig_id(RuntimeSettings(x_statsig_id=custom)) == custom


@pytest.mark.parametrize("prefix", ["x1:", "e:"])
def test_dynamic_statsig_is_fresh_and_uses_the_prefix(prefix: str) -> None:
    settings = RuntimeSettings(dynamic_statsig=True, statsig_prefix=prefix)  # type: ignore[arg-type]
    values = {statsig_id(settings) for _ in range(20)}
    assert len(values) > 10
    for value in values:
        text = decoded(value)
        assert text.startswith(prefix + "TypeError: Cannot read properties of ")
        assert re.search(r"\(reading '(children\['[a-z0-9]{5}'\]|[a-z]{10})'\)$", text)


@pytest.mark.parametrize(
    ("raw", "token"),
    [
        ("eyJ.abc", "eyJ.abc"),
        ("  sso=eyJ.abc ", "eyJ.abc"),
        ("sso-rw=eyJ.x; sso=eyJ.y; other=1", "eyJ.y"),
        ('"eyJ.q"', "eyJ.q"),
        ("sso-rw=only", "only"),
        ("a=b; c=d", ""),
    ],
)
def test_normalize_token(raw: str, token: str) -> None:
    assert normalize_token(raw) == token


def test_cookie_and_headers() -> None:
    settings = RuntimeSettings(cf_clearance="cf_clearance=abc")
    assert cookie("tok", settings) == "sso-rw=tok;sso=tok;cf_clearance=abc"
    headers = api_headers("tok", settings)
    assert headers["Cookie"] == cookie("tok", settings) and headers["Origin"] == "https://grok.com"
    assert headers["Content-Type"] == "application/json" and headers["x-statsig-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["x-xai-request-id"])
    assert api_headers("tok", settings, upload=True)["Content-Type"] == "text/plain;charset=UTF-8"
    assert api_headers("tok", settings)["x-xai-request-id"] != headers["x-xai-request-id"]
    assets = asset_headers("tok", settings)
    assert "Content-Type" not in assets and assets["Sec-Fetch-Mode"] == "navigate" and "x-statsig-id" not in assets


async def test_a_strict_grok_accepts_the_defaults_and_names_the_fix_otherwise(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, chat_transport: str
) -> None:
    fake.strict_statsig = True
    fake.statsig_prefixes = ("x1:",)  # what grok.com accepts since mid-2026
    await gateway.add_accounts("tok-statsig")
    ask: list[Any] = [{"role": "user", "content": "hi"}]
    with_image: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": JPEG}}]}
    ]
    assert (await client.chat.completions.create(model="grok-3-fast", messages=ask)).choices[0].message.content
    await gateway.settings(dynamic_statsig=True)
    assert (await client.chat.completions.create(model="grok-3-fast", messages=ask)).choices[0].message.content
    await gateway.settings(statsig_prefix="e:")
    if chat_transport == "ws":
        # Neither the chat WebSocket nor upload v2 is a /rest/ call, so no statsig is checked on this path.
        for messages in (ask, with_image):
            assert (await client.chat.completions.create(model="grok-3-fast", messages=messages)).choices
        assert [s.refused for s in fake.mgw_sessions()] == [None] * 4
        assert not any("x-statsig-id" in s.headers for s in fake.mgw_sessions())
        return
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=ask)
    assert info.value.status_code == 502 and "statsig" in info.value.response.json()["error"]["message"]


def test_websocket_handshake_headers_carry_the_cookie_and_no_statsig() -> None:
    settings = RuntimeSettings(upstream_url="https://grok.example", cf_clearance="cf-1")
    headers = ws_headers("tok", "uid-1", settings)
    assert headers == {
        "Origin": "https://grok.example",
        "User-Agent": USER_AGENT,
        "Accept-Language": api_headers("tok", settings)["Accept-Language"],
        "Cache-Control": "no-cache",
        "Pragma": "no-cache",
        "Cookie": "sso=tok; sso-rw=tok; cf_clearance=cf-1; x-userid=uid-1",
    }
    assert ws_cookie("tok", "uid-2", RuntimeSettings()) == "sso=tok; sso-rw=tok; x-userid=uid-2"

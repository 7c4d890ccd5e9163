"""What the property tests over the HTTP surface share: the app in process with the fake grok.com
(``fuzz_app``), hypothesis settings bounded for CI, strategies for JSON and text (lone surrogates on request),
multipart bodies, and the checks of each surface's documented error shape and event streams.

Everything that could make the gateway reach past loopback is pinned in the environment (upstream and asset URLs,
proxies, the public base URL), so no generated setting can change it; image URLs are drawn from data: URIs and
loopback addresses, which the gateway refuses without a lookup.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from asgi_client import AsgiResponse, call, running
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp

from grok2api.anthropic.errors import ErrorType
from grok2api.app import create_app
from grok2api.config import BootConfig
from grok2api.services import Services
from grok2api.store.base import NewAccount
from grok2api.testing.fake_grok import FakeGrok
from grok2api.testing.fake_upload import MIN_IMAGE_SIDE, solid_png

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "fuzz-admin-password"
ACCOUNTS = ("heavy-fuzz-1", "heavy-fuzz-2", "fuzz-basic-1")
# Bounded for CI: each example is one in-process request; no deadline, since a request may wait on the fake.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
JSON_HEADERS = [("content-type", "application/json")]
# An image grok.com (and the fake) takes wherever one is expected.
PNG = solid_png(MIN_IMAGE_SIDE, MIN_IMAGE_SIDE)


@dataclass
class FuzzApp:
    app: ASGIApp
    services: Services
    fake: FakeGrok

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        client: str = "127.0.0.1",
    ) -> AsgiResponse:
        return await call(self.app, method, target, body=body, headers=headers, client=client)

    async def admin_token(self) -> str:
        body = json.dumps({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}).encode()
        answer = await self.request("POST", "/api/login", body, JSON_HEADERS)
        assert answer.status == 200, answer.body
        token: str = answer.json()["token"]
        return token


@asynccontextmanager
async def fuzz_app(data_dir: Path) -> AsyncIterator[FuzzApp]:
    """The gateway in process on SQLite, pointed at a fake grok.com, with a few accounts."""
    fake = FakeGrok()
    await fake.start()
    environ = {
        "GROK2API_UPSTREAM_URL": fake.base_url,
        "GROK2API_ASSETS_URL": fake.assets_url,
        "GROK2API_UPSTREAM_TRANSPORT": "aiohttp",
        "GROK2API_PROXY_URL": "",
        "GROK2API_CACHE_PROXY_URL": "",
        "GROK2API_BASE_URL": "",
        "GROK2API_ADMIN_USERNAME": ADMIN_USERNAME,
        "GROK2API_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    boot = BootConfig(data_dir=data_dir, environ=environ, admin_password=ADMIN_PASSWORD)
    services = Services(boot)
    app = create_app(boot, services)
    try:
        async with running(app):
            tiers = ["heavy" if t.startswith("heavy") else "basic" for t in ACCOUNTS]
            await services.store.add_accounts(
                [NewAccount(token=t, tier=tier) for t, tier in zip(ACCOUNTS, tiers, strict=True)]
            )
            await services.reload(force=True)
            yield FuzzApp(app, services, fake)
    finally:
        await fake.stop()


# ---- strategies -------------------------------------------------------------------------------------------------

# Lone surrogates can only travel as JSON escapes (\ud800); they are drawn only on request.
SURROGATES = st.characters(categories=["Cs"])
CHARACTERS = st.characters(exclude_categories=["Cs"])


# Where a request comes from: sign-ins are throttled per address, so some share one and others are alone.
CLIENTS = st.one_of(st.sampled_from(["127.0.0.1", "10.0.0.1"]), st.ip_addresses(v=4).map(str))


def texts(*, surrogates: bool = False, max_size: int = 24) -> st.SearchStrategy[str]:
    """Any text; with ``surrogates``, always holding at least one lone surrogate."""
    if surrogates:
        return st.tuples(texts(max_size=max_size // 2), SURROGATES, texts(max_size=max_size // 2)).map("".join)
    return st.text(CHARACTERS, max_size=max_size)


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), text)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
        max_leaves=12,
    )


def or_junk(good: st.SearchStrategy[Any], text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Mostly a well-typed value, sometimes any JSON value (to reach every type check)."""
    return st.one_of(good, good, json_values(text))


def image_urls(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Image references that never leave the machine: data: URIs (valid or not), loopback URLs (refused as
    private), and text without a scheme."""
    return st.one_of(
        st.just("data:image/png;base64," + base64.b64encode(PNG).decode()),
        st.builds(lambda b: "data:image/png;base64," + base64.b64encode(b).decode(), st.binary(max_size=32)),
        st.sampled_from(["http://127.0.0.1:9/x.png", "https://localhost/x.jpg", "data:,", "data:image/png;base64,!"]),
        text.filter(lambda t: ":" not in t),
    )


def encode(body: Any) -> bytes:
    """JSON as clients send it: non-ASCII escaped, so lone surrogates travel as ``\\udXXX``."""
    return json.dumps(body, ensure_ascii=True).encode()


def raw_bodies() -> st.SearchStrategy[bytes]:
    """Bodies that are not JSON, or barely: bytes, truncated objects, deep nesting."""
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"", b"{", b'{"model":', b"[" * 5000, b"null", b"\xff\xfe", b'{"a":1}' * 3]),
    )


def multipart(
    fields: Sequence[tuple[str, str]], files: Sequence[tuple[str, bytes]]
) -> tuple[bytes, list[tuple[str, str]]]:
    """A multipart/form-data body and its content-type header."""
    boundary = "fuzz" + secrets.token_hex(8)
    parts: list[bytes] = []
    for name, value in fields:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
        parts.append(head.encode() + value.encode("utf-8", "replace") + b"\r\n")
    for name, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"; filename="f.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, [("content-type", f"multipart/form-data; boundary={boundary}")]


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


# ---- documented shapes ------------------------------------------------------------------------------------------


def assert_openai_error(answer: AsgiResponse) -> None:
    """OpenAI's envelope, exactly: {"error": {"message", "type", "param", "code"}}."""
    assert answer.content_type == "application/json", answer.headers
    body = answer.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error


def assert_admin_api_error(answer: AsgiResponse, *, with_code: bool = True) -> None:
    """The JSON admin API's envelope: {"success": false, "message", "code"} (a login failure has no code)."""
    assert answer.content_type == "application/json", answer.headers
    body = answer.json()
    assert isinstance(body, dict) and body.get("success") is False, body
    assert isinstance(body.get("message"), str) and body["message"], body
    if with_code:
        assert isinstance(body.get("code"), str) and body["code"], body


ANTHROPIC_ERROR_TYPES = set(get_args(ErrorType))


def assert_anthropic_error(answer: AsgiResponse) -> None:
    """Anthropic's shape, exactly: {"type": "error", "error": {"type", "message"}}, with one of its types."""
    assert answer.content_type == "application/json", answer.headers
    assert_anthropic_error_body(answer.json())


def assert_anthropic_error_body(body: Any) -> None:
    assert isinstance(body, dict) and set(body) == {"type", "error"} and body["type"] == "error", body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"type", "message"}, error
    assert error["type"] in ANTHROPIC_ERROR_TYPES, error
    assert isinstance(error["message"], str) and error["message"], error


def named_events(body: bytes) -> list[tuple[str, Any]]:
    """A stream whose every event is an ``event:`` line and a ``data:`` line of JSON, as (name, payload)."""
    events: list[tuple[str, Any]] = []
    for frame in body.decode().split("\n\n"):
        if not frame:
            continue
        lines = frame.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        events.append((lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: "))))
    assert events, body
    return events


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def holds_surrogate(value: Any) -> bool:
    """Does any string in ``value`` (a key too) hold a lone surrogate?"""
    return _LONE_SURROGATE.search(json.dumps(value, ensure_ascii=False)) is not None

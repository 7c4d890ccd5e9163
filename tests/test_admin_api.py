"""The JSON admin API (/api/*) against the live gateway: the reference's request and response shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from grok2api.testing.fake_grok import FakeGrok

from harness import ADMIN_PASSWORD, LiveGateway

PASSWORD = ADMIN_PASSWORD  # the gateway fixture's


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Api:
    def __init__(self, http: aiohttp.ClientSession, url: str, token: str = "") -> None:
        self.http, self.url, self.token = http, url, token

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        bearer = self.token if token is None else token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> Any:
        status, body = await self.call("GET", path)
        assert status == 200, body
        return body

    async def post(self, path: str, body: Any = None) -> Any:
        status, body = await self.call("POST", path, body)
        assert status == 200, body
        return body


async def login(http: aiohttp.ClientSession, url: str, password: str = PASSWORD) -> Api:
    api = Api(http, url)
    status, body = await api.call("POST", "/api/login", {"username": "admin", "password": password})
    assert status == 200 and body["success"] is True, body
    api.token = body["token"]
    return api


async def test_login_success_failure_and_bad_body(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = Api(http, gateway.url)
    status, body = await api.call("POST", "/api/login", {"username": "admin", "password": "admin"})
    assert status == 401
    assert body == {"success": False, "token": None, "message": "Wrong username or password."}
    status, body = await api.call("POST", "/api/login", {"username": "root", "password": PASSWORD})
    assert (status, body["success"]) == (401, False)
    status, body = await api.call("POST", "/api/login", {"username": "admin"})
    assert (status, body["success"], body["token"]) == (400, False, None)
    async with http.post(gateway.url + "/api/login", data=b"{not json") as resp:
        assert resp.status == 400
        assert (await resp.json())["success"] is False
    status, body = await api.call("POST", "/api/login", {"username": "admin", "password": PASSWORD})
    assert status == 200
    assert set(body) == {"success", "token", "message"} and body["success"] is True and len(body["token"]) > 30


async def test_login_is_throttled_after_repeated_failures(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = Api(http, gateway.url)
    for _ in range(5):
        status, _ = await api.call("POST", "/api/login", {"username": "admin", "password": "guess"})
        assert status == 401
    async with http.post(gateway.url + "/api/login", json={"username": "admin", "password": PASSWORD}) as resp:
        assert resp.status == 429  # even the right password waits: nothing is checked while locked out
        assert int(resp.headers["Retry-After"]) > 0
        body = await resp.json()
    assert body["success"] is False and body["token"] is None


async def test_every_endpoint_needs_a_valid_bearer(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = Api(http, gateway.url)
    endpoints = [
        ("POST", "/api/logout"),
        ("GET", "/api/tokens"),
        ("POST", "/api/tokens/add"),
        ("POST", "/api/tokens/delete"),
        ("POST", "/api/tokens/tags"),
        ("GET", "/api/tokens/tags/all"),
        ("POST", "/api/tokens/note"),
        ("POST", "/api/tokens/test"),
        ("GET", "/api/settings"),
        ("POST", "/api/settings"),
        ("GET", "/api/cache/size"),
        ("POST", "/api/cache/clear"),
        ("POST", "/api/cache/clear/images"),
        ("POST", "/api/cache/clear/videos"),
        ("GET", "/api/stats"),
        ("GET", "/api/storage/mode"),
        ("GET", "/api/keys"),
        ("POST", "/api/keys"),
        ("DELETE", "/api/keys/some-id"),
    ]
    for method, path in endpoints:
        status, body = await api.call(method, path, {})
        assert (status, body["success"], body["code"]) == (401, False, "UNAUTHORIZED"), path
        status, body = await api.call(method, path, {}, token="made-up-session")
        assert (status, body["code"]) == (401, "SESSION_INVALID"), path


async def test_logout_ends_the_session(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    assert await api.post("/api/logout") == {"success": True, "message": "Signed out."}
    status, body = await api.call("GET", "/api/stats")
    assert (status, body["code"]) == (401, "SESSION_INVALID")


async def test_tokens_add_list_and_delete(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    added = await api.post(
        "/api/tokens/add", {"tokens": ["sso=basic-one", "basic-two", "", "bad token!"], "token_type": "sso"}
    )
    assert (added["success"], added["count"], added["added"], added["updated"]) == (True, 2, 2, 0)
    assert [r["reason"] for r in added["rejected"]] == ["contains characters an SSO cookie cannot have"]
    assert (await api.post("/api/tokens/add", {"tokens": ["super-one"], "token_type": "ssoSuper"}))["count"] == 1
    again = await api.post("/api/tokens/add", {"tokens": ["basic-one"], "token_type": "sso"})
    assert (again["added"], again["updated"]) == (0, 1)

    listed = await api.get("/api/tokens")
    assert listed["success"] is True and listed["total"] == 3
    assert [r["token"] for r in listed["data"]] == ["basic-one", "basic-two", "super-one"]  # normal first
    row = listed["data"][0]
    reference_fields = {
        "token",
        "token_type",
        "created_time",
        "remaining_queries",
        "heavy_remaining_queries",
        "status",
        "tags",
        "note",
    }
    assert reference_fields <= set(row)
    assert (row["token_type"], row["status"], row["remaining_queries"], row["state"]) == ("sso", "未使用", -1, "active")
    assert isinstance(row["created_time"], int) and row["created_time"] > 1_600_000_000_000
    assert listed["data"][2]["token_type"] == "ssoSuper"

    status, body = await api.call("POST", "/api/tokens/add", {"tokens": ["x"], "token_type": "premium"})
    assert (status, body["success"], body["code"]) == (400, False, "INVALID_TYPE")
    status, body = await api.call("POST", "/api/tokens/add", {"tokens": "basic-three", "token_type": "sso"})
    assert (status, body["code"]) == (400, "INVALID_FIELD")

    deleted = await api.post("/api/tokens/delete", {"tokens": ["basic-two", "not-there"], "token_type": "sso"})
    assert (deleted["success"], deleted["count"]) == (True, 1)
    assert (await api.get("/api/tokens"))["total"] == 2
    status, body = await api.call("POST", "/api/tokens/delete", {"tokens": ["basic-one"], "token_type": "nope"})
    assert (status, body["code"]) == (400, "INVALID_TYPE")


async def test_tokens_list_paging_extension(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    await api.post("/api/tokens/add", {"tokens": [f"page-{i:03d}" for i in range(60)], "token_type": "sso"})
    page = await api.get("/api/tokens?page=2&size=25&sort=created")
    assert (page["total"], page["page"], page["pages"], len(page["data"])) == (60, 2, 3, 25)
    found = await api.get("/api/tokens?q=page-04")
    assert sorted(r["token"] for r in found["data"]) == [f"page-04{i}" for i in range(10)]


async def test_tags_all_tags_and_note(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    await api.post("/api/tokens/add", {"tokens": ["tag-a", "tag-b"], "token_type": "sso"})
    body = await api.post(
        "/api/tokens/tags", {"token": "tag-a", "token_type": "sso", "tags": [" vip ", "", "eu", "vip"]}
    )
    assert body == {"success": True, "message": "Tags updated.", "tags": ["vip", "eu"]}
    await api.post("/api/tokens/tags", {"token": "tag-b", "token_type": "sso", "tags": ["asia", "eu"]})
    assert await api.get("/api/tokens/tags/all") == {"success": True, "data": ["asia", "eu", "vip"]}

    note = await api.post("/api/tokens/note", {"token": "tag-a", "token_type": "sso", "note": "  bought in May  "})
    assert note == {"success": True, "message": "Note updated.", "note": "bought in May"}
    rows = {r["token"]: r for r in (await api.get("/api/tokens"))["data"]}
    assert (rows["tag-a"]["tags"], rows["tag-a"]["note"]) == (["vip", "eu"], "bought in May")

    status, body = await api.call("POST", "/api/tokens/note", {"token": "missing", "token_type": "sso", "note": ""})
    assert (status, body["success"], body["code"]) == (404, False, "TOKEN_NOT_FOUND")
    status, body = await api.call("POST", "/api/tokens/tags", {"token": "tag-a", "token_type": "sso", "tags": "eu"})
    assert (status, body["code"]) == (400, "INVALID_FIELD")


async def test_token_test_valid_invalid_and_outside_the_pool(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    await api.post("/api/tokens/add", {"tokens": ["good-token", "invalid-token", "super-guessed"], "token_type": "sso"})

    ok = await api.post("/api/tokens/test", {"token": "good-token", "token_type": "sso"})
    assert ok["success"] is True
    data = ok["data"]
    assert (data["valid"], data["remaining_queries"], data["limit"], data["state"]) == (True, 30, 30, "active")
    assert data["heavy_remaining_queries"] == 0 and "fast 30 of 30, auto 20 of 20" in data["explanation"]
    row = next(r for r in (await api.get("/api/tokens"))["data"] if r["token"] == "good-token")
    assert (row["remaining_queries"], row["status"], row["tier"]) == (30, "正常", "basic")  # refreshed by the check

    # Added as a basic account, but its windows are a super account's: the check corrects the tier.
    learned = await api.post("/api/tokens/test", {"token": "super-guessed", "token_type": "sso"})
    assert (learned["data"]["remaining_queries"], learned["data"]["limit"]) == (140, 140)
    assert "(super tier)" in learned["data"]["explanation"]
    row = next(r for r in (await api.get("/api/tokens"))["data"] if r["token"] == "super-guessed")
    assert (row["tier"], row["token_type"], row["remaining_queries"]) == ("super", "ssoSuper", 140)

    bad = await api.post("/api/tokens/test", {"token": "invalid-token", "token_type": "sso"})
    assert bad["success"] is False and "401" in bad["message"]
    assert (bad["data"]["valid"], bad["data"]["error_type"], bad["data"]["error_code"]) == (False, "expired", 401)
    assert bad["data"]["state"] == "invalid" and "credentials" in bad["data"]["state_reason"]
    row = next(r for r in (await api.get("/api/tokens"))["data"] if r["token"] == "invalid-token")
    assert (row["status"], row["state"]) == ("失效", "invalid")

    outside = await api.post("/api/tokens/test", {"token": "never-added", "token_type": "sso"})
    assert (outside["data"]["valid"], outside["data"]["in_pool"]) == (True, False)
    assert (outside["data"]["remaining_queries"], outside["data"]["limit"]) == (30, 30)
    assert (await api.get("/api/tokens"))["total"] == 3  # testing does not add it

    status, body = await api.call("POST", "/api/tokens/test", {"token": "good-token", "token_type": "x"})
    assert (status, body["code"]) == (400, "INVALID_TYPE")


async def test_settings_get_masks_secrets_and_post_validates(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    saved = await api.post(
        "/api/settings",
        {
            "grok_config": {"api_key": "sk-very-secret", "proxy_url": "socks5://u:p@h:1", "show_thinking": False},
            "global_config": {"image_mode": "base64"},
        },
    )
    assert saved["success"] is True and saved["changed"] == ["api_key", "image_mode", "proxy_url", "show_thinking"]
    settings = gateway.services.settings
    assert (settings.api_key, settings.proxy_url, settings.show_thinking, settings.image_mode) == (
        "sk-very-secret",
        "socks5h://u:p@h:1",
        False,
        "base64",
    )

    got = await api.get("/api/settings")
    assert set(got["data"]) == {"global", "grok"}
    assert got["data"]["global"]["api_key"] == "********" and got["data"]["grok"]["proxy_url"] == "********"
    assert got["data"]["global"]["admin_password"] == "********" and got["data"]["global"]["admin_username"] == "admin"
    assert got["data"]["grok"]["show_thinking"] is False and got["data"]["grok"]["stream_chunk_timeout"] == 120
    assert "upstream_url" in got["locked"]
    async with http.get(gateway.url + "/api/settings", headers={"Authorization": f"Bearer {api.token}"}) as resp:
        raw = await resp.text()
    assert "sk-very-secret" not in raw and "u:p@h" not in raw

    # The reference UI posts whole sections back: masks, unchanged and env-locked values are no-ops.
    echoed = await api.post(
        "/api/settings", {"global_config": got["data"]["global"], "grok_config": got["data"]["grok"]}
    )
    assert echoed["changed"] == []
    assert gateway.services.settings.api_key == "sk-very-secret"

    status, body = await api.call(
        "POST", "/api/settings", {"grok_config": {"stream_chunk_timeout": "soon", "no_such": 1}}
    )
    assert (status, body["success"], body["code"]) == (400, False, "INVALID_SETTINGS")
    assert set(body["errors"]) == {"no_such"}  # unknown keys are refused before any value is looked at
    status, body = await api.call("POST", "/api/settings", {"grok_config": {"stream_chunk_timeout": "soon"}})
    assert status == 400 and "a number" in body["errors"]["stream_chunk_timeout"]
    status, body = await api.call("POST", "/api/settings", {"grok_config": {"upstream_url": "http://elsewhere"}})
    assert status == 400 and "environment" in body["errors"]["upstream_url"]
    status, body = await api.call("POST", "/api/settings", {"other_config": {}})
    assert status == 400 and "other_config" in body["errors"]
    assert gateway.services.settings.stream_chunk_timeout == 120


async def test_admin_password_change_through_settings_ends_other_sessions(
    tmp_path: Path, fake: FakeGrok, http: aiohttp.ClientSession
) -> None:
    # No env password: it may change.
    gateway = LiveGateway(tmp_path / "data", fake.base_url, fake.assets_url, admin_password="")
    await gateway.start()
    try:
        from grok2api.passwords import ADMIN_HASH_KEY, hash_password

        await gateway.services.store.save_settings({ADMIN_HASH_KEY: hash_password("first-password")})
        first = await login(http, gateway.url, "first-password")
        other = await login(http, gateway.url, "first-password")
        status, body = await first.call("POST", "/api/settings", {"global_config": {"admin_password": "short"}})
        assert status == 400 and "admin_password" in body["errors"]
        done = await first.post("/api/settings", {"global_config": {"admin_password": "second-password"}})
        assert done["sessions_ended"] == 1
        assert (await other.call("GET", "/api/stats"))[0] == 401
        assert (await first.call("GET", "/api/stats"))[0] == 200
        status, _ = await Api(http, gateway.url).call(
            "POST", "/api/login", {"username": "admin", "password": "first-password"}
        )
        assert status == 401
        await login(http, gateway.url, "second-password")
    finally:
        await gateway.stop()


async def test_env_password_cannot_be_changed_through_the_api(
    gateway: LiveGateway, http: aiohttp.ClientSession
) -> None:
    api = await login(http, gateway.url)
    status, body = await api.call("POST", "/api/settings", {"global_config": {"admin_password": "a-new-password"}})
    assert status == 400 and "GROK2API_ADMIN_PASSWORD" in body["errors"]["admin_password"]


async def test_stats_and_storage_mode(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    await api.post("/api/tokens/add", {"tokens": ["s-1", "s-2", "invalid-s-3"], "token_type": "sso"})
    await api.post("/api/tokens/add", {"tokens": ["super-s-4"], "token_type": "ssoSuper"})
    await api.post("/api/tokens/test", {"token": "s-1", "token_type": "sso"})
    await api.post("/api/tokens/test", {"token": "invalid-s-3", "token_type": "sso"})
    stats = await api.get("/api/stats")
    assert stats["success"] is True
    data = stats["data"]
    assert data["normal"] == {"total": 3, "unused": 1, "limited": 0, "expired": 1, "active": 1}
    assert data["super"] == {"total": 1, "unused": 1, "limited": 0, "expired": 0, "active": 0}
    assert data["total"] == 4
    assert data["states"]["invalid"] == 1 and data["quota"]["remaining"] == 30  # s-1's fast window
    assert set(data["requests"]) == {"hour_ok", "hour_errors", "day_ok", "day_errors"}
    assert await api.get("/api/storage/mode") == {"success": True, "data": {"mode": "FILE", "backend": "sqlite"}}


async def test_cache_size_and_clear(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    images, videos = gateway.boot.data_dir / "images", gateway.boot.data_dir / "videos"
    for d in (images, videos):
        d.mkdir(parents=True, exist_ok=True)
    (images / "a.png").write_bytes(b"\0" * 2048)
    (images / "b.png").write_bytes(b"\0" * 1024)
    (videos / "c.mp4").write_bytes(b"\0" * 4096)

    size = await api.get("/api/cache/size")
    assert size["data"] == {
        "image_size": "3.0 KB",
        "video_size": "4.0 KB",
        "total_size": "7.0 KB",
        "image_size_bytes": 3072,
        "video_size_bytes": 4096,
        "total_size_bytes": 7168,
    }
    cleared = await api.post("/api/cache/clear/images")
    assert cleared["success"] is True and cleared["data"] == {"deleted_count": 2, "type": "images"}
    cleared = await api.post("/api/cache/clear/videos")
    assert cleared["data"] == {"deleted_count": 1, "type": "videos"}
    (images / "d.png").write_bytes(b"\0")
    cleared = await api.post("/api/cache/clear")
    assert cleared["data"] == {"deleted_count": 1, "image_count": 1, "video_count": 0}
    assert (await api.get("/api/cache/size"))["data"]["total_size_bytes"] == 0


async def test_malformed_bodies_are_client_errors_never_500(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    deep = b"[" * 20_000 + b"]" * 20_000  # 40 KB, far past the recursion limit
    async with http.post(gateway.url + "/api/login", data=deep, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400  # unauthenticated: must not reach the 500 handler
    api = await login(http, gateway.url)
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    async with http.post(gateway.url + "/api/tokens/add", data=deep, headers=headers) as resp:
        assert resp.status == 400
    for token_type in (["sso"], {"a": 1}, 5, None):
        for path, body in (
            ("/api/tokens/add", {"tokens": ["abc"], "token_type": token_type}),
            ("/api/tokens/delete", {"tokens": ["abc"], "token_type": token_type}),
            ("/api/tokens/note", {"token": "abc", "token_type": token_type, "note": ""}),
            ("/api/tokens/test", {"token": "abc", "token_type": token_type}),
        ):
            status, answer = await api.call("POST", path, body)
            assert (status, answer["code"]) == (400, "INVALID_TYPE"), (path, token_type)


async def test_admin_login_fields_through_settings_are_validated(
    gateway: LiveGateway, http: aiohttp.ClientSession
) -> None:
    api = await login(http, gateway.url)
    for section in ({"admin_username": "   "}, {"admin_username": 5}, {"admin_password": 12345678}):
        status, body = await api.call("POST", "/api/settings", {"global_config": section})
        assert status == 400 and body["code"] == "INVALID_SETTINGS", section
    assert (await api.get("/api/settings"))["data"]["global"]["admin_username"] == "admin"


async def _endless(sent: list[int], prefix: bytes) -> AsyncIterator[bytes]:
    yield prefix
    for _ in range(200):  # 200 MB, chunked (no Content-Length), stopping early only if the server hangs up
        sent[0] += 1
        yield b"a" * (1024 * 1024)
    yield b'"}'


@pytest.mark.parametrize(
    ("path", "content_type", "prefix"),
    [
        ("/api/login", "application/json", b'{"username": "admin", "password": "'),
        ("/login", "application/x-www-form-urlencoded", b"username=admin&password="),
    ],
)
async def test_unauthenticated_login_bodies_are_capped_while_reading(
    gateway: LiveGateway, path: str, content_type: str, prefix: bytes
) -> None:
    """Sign-in is open to anyone: a huge body must be refused early, not buffered whole first."""
    sent = [0]
    status = 0
    async with aiohttp.ClientSession() as http:
        try:
            async with http.post(
                gateway.url + path, data=_endless(sent, prefix), headers={"Content-Type": content_type}
            ) as resp:
                status = resp.status
        except aiohttp.ClientError:
            status = -1  # the server answered and closed while we were still sending: also fine
    assert status in (-1, 403, 413), status
    assert sent[0] < 100, f"the server read {sent[0]} MB before refusing"


async def test_forwarded_for_headers_do_not_reset_the_throttle(
    gateway: LiveGateway, http: aiohttp.ClientSession
) -> None:
    """The throttle keys on the connection's address: a spoofed X-Forwarded-For per guess changes nothing."""
    statuses = []
    for i in range(7):
        headers = {"X-Forwarded-For": f"203.0.113.{i}", "X-Real-IP": f"198.51.100.{i}", "Forwarded": f"for=192.0.2.{i}"}
        body = {"username": "admin", "password": f"guess-{i}"}
        async with http.post(gateway.url + "/api/login", json=body, headers=headers) as resp:
            statuses.append(resp.status)
    assert statuses == [401] * 5 + [429] * 2


# A JSON string escape may name half of a UTF-16 surrogate pair; no encoder, database or response can hold it.
LONE_SURROGATE_BODIES = [
    ("/api/tokens/add", b'{"tokens": ["abc"], "token_type": "sso", "tags": ["\\ud800"]}'),
    ("/api/tokens/delete", b'{"tokens": ["\\ud800"], "token_type": "sso"}'),
    ("/api/tokens/note", b'{"token": "abc", "token_type": "sso", "note": "\\udc00"}'),
    ("/api/tokens/tags", b'{"token": "abc", "token_type": "sso", "tags": ["\\ud800x"]}'),
    ("/api/settings", b'{"global_config": {"admin_username": "\\ud800"}}'),
    ("/api/settings", b'{"grok_config": {"\\ud800": 1}}'),
]


async def test_lone_surrogates_are_a_400_never_a_500(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    json_type = {"Content-Type": "application/json"}
    async with http.post(
        gateway.url + "/api/login", data=b'{"username": "\\ud800", "password": "x"}', headers=json_type
    ) as resp:
        assert resp.status == 400  # unauthenticated, and in the login's own shape
        assert await resp.json() == {"success": False, "token": None, "message": "The body is not valid JSON."}
    api = await login(http, gateway.url)
    await gateway.add_accounts("abc")
    headers = {"Authorization": f"Bearer {api.token}", **json_type}
    for path, raw in LONE_SURROGATE_BODIES:
        async with http.post(gateway.url + path, data=raw, headers=headers) as resp:
            body = await resp.json()
            assert (resp.status, body["success"], body["code"]) == (400, False, "INVALID_JSON"), (path, body)
    # A proper pair (an emoji) is fine.
    async with http.post(
        gateway.url + "/api/tokens/note",
        data=b'{"token": "abc", "token_type": "sso", "note": "\\ud83d\\ude00"}',
        headers=headers,
    ) as resp:
        assert resp.status == 200, await resp.text()
    (account,) = await gateway.services.store.list_accounts()
    assert account.note == "\U0001f600"


async def test_client_keys_add_list_use_and_revoke(gateway: LiveGateway, http: aiohttp.ClientSession) -> None:
    api = await login(http, gateway.url)
    assert await api.get("/api/keys") == {"success": True, "total": 0, "data": []}
    created = await api.post(
        "/api/keys", {"name": "ci bot", "models": ["grok-3-fast"], "rpm": 30, "expires_at": "2099-01-31T12:00:00Z"}
    )
    record = created["data"]
    secret = record.pop("key")
    assert secret.startswith("sk-g2a-") and record["prefix"] == secret[:12]
    assert record["name"] == "ci bot" and record["models"] == ["grok-3-fast"] and record["rpm"] == 30
    assert record["expires_at"] == 4073544000.0 and record["status"] == "active"
    listed = await api.get("/api/keys")
    assert listed["total"] == 1 and listed["data"] == [record]  # the secret is never shown again
    assert secret not in str(listed)
    # Unix seconds work too, and nothing but a name is needed.
    plain = (await api.post("/api/keys", {"name": "plain", "expires_at": 4073544000}))["data"]
    assert (plain["models"], plain["rpm"], plain["expires_at"]) == ([], 0, 4073544000.0)

    # The key works on /v1 at once, within its model allowlist.
    await gateway.add_accounts("tok1")
    chat = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "hi"}]}
    auth = {"Authorization": f"Bearer {secret}"}
    async with http.post(gateway.url + "/v1/chat/completions", json=chat, headers=auth) as resp:
        assert resp.status == 200
    async with http.post(
        gateway.url + "/v1/chat/completions", json={**chat, "model": "grok-4-heavy"}, headers=auth
    ) as resp:
        assert resp.status == 403

    status, body = await api.call("DELETE", f"/api/keys/{record['id']}")
    assert (status, body) == (200, {"success": True, "message": "Key revoked."})
    assert [k["status"] for k in (await api.get("/api/keys"))["data"]] == ["revoked", "active"]
    async with http.post(gateway.url + "/v1/chat/completions", json=chat, headers=auth) as resp:
        assert resp.status == 401
    status, body = await api.call("DELETE", "/api/keys/no-such-key")
    assert (status, body["code"]) == (404, "KEY_NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "n", "models": "grok-3-fast"}, "models"),
        ({"name": "n", "models": ["gpt-9"]}, "models"),
        ({"name": "n", "rpm": -1}, "rpm"),
        ({"name": "n", "rpm": "5"}, "rpm"),
        ({"name": "n", "rpm": True}, "rpm"),
        ({"name": "n", "rpm": 100_001}, "rpm"),
        ({"name": "n", "expires_at": "next week"}, "expires_at"),
        ({"name": "n", "expires_at": "2001-01-01"}, "expires_at"),
        ({"name": "n", "expires_at": 1000}, "expires_at"),
        ({"name": "n", "expires_at": -5}, "expires_at"),
        ({"name": "n", "expires_at": 1e300}, "expires_at"),
        ({"name": "n", "expires_at": True}, "expires_at"),
        ({"name": "n", "expires_at": ["2099-01-01"]}, "expires_at"),
    ],
)
async def test_client_key_fields_are_validated(
    gateway: LiveGateway, http: aiohttp.ClientSession, body: dict[str, Any], field: str
) -> None:
    api = await login(http, gateway.url)
    status, answer = await api.call("POST", "/api/keys", body)
    assert (status, answer["success"], answer["code"], answer["field"]) == (400, False, "INVALID_FIELD", field)
    assert field in answer["errors"] and answer["message"]
    assert await gateway.services.store.list_client_keys() == []

"""The HTML admin over HTTP (no browser): sessions, CSRF, headers, fragments, escaping and each
page's form handling."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest

from grok2api.admin.accounts_input import parse_input
from grok2api.admin.sessions import SESSION_TTL, session_hash
from grok2api.testing.fake_grok import FakeGrok

from harness import ADMIN_PASSWORD, AdminClient, LiveGateway

PASSWORD = ADMIN_PASSWORD  # the gateway fixture's


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {"GROK2API_CF_CLEARANCE": "env-clearance"}  # a setting the environment locks


@pytest.fixture
async def admin(gateway: LiveGateway) -> AsyncIterator[AdminClient]:
    b = AdminClient(gateway.url)
    resp = await b.login()
    assert resp.status == 303
    try:
        yield b
    finally:
        await b.close()


async def test_login_page_security_headers_and_cookie_flags(gateway: LiveGateway) -> None:
    b = AdminClient(gateway.url)
    try:
        async with b.http.get(gateway.url + "/login") as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
        wrong = await b.login(password="admin")
        assert wrong.status == 401 and "Wrong username or password." in await wrong.text()
        good = await b.login()
        assert good.headers["Location"] == "/manage"
        cookie = next(c for c in good.headers.getall("Set-Cookie") if c.startswith("g2a_admin="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    finally:
        await b.close()


async def test_secure_cookie_behind_https_proxy(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(gateway.url + "/login", headers={"X-Forwarded-Proto": "https"}) as resp:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
            assert token and "Secure" in resp.headers["Set-Cookie"]
        # The login cookie was Secure, so aiohttp (plain http) keeps it back: send it by hand.
        async with http.post(
            gateway.url + "/login",
            allow_redirects=False,
            headers={"X-Forwarded-Proto": "https", "Cookie": f"g2a_login={token.group(1)}"},
            data={"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)},
        ) as resp:
            assert resp.status == 303
            assert "Secure" in next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("g2a_admin="))


async def test_login_form_refuses_missing_token_and_foreign_origin(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            gateway.url + "/login", data={"username": "admin", "password": PASSWORD}, allow_redirects=False
        ) as resp:
            assert resp.status == 403
        async with http.get(gateway.url + "/login") as resp:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        assert token
        async with http.post(
            gateway.url + "/login",
            allow_redirects=False,
            headers={"Origin": "https://evil.example"},
            data={"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)},
        ) as resp:
            assert resp.status == 403


async def test_unauthenticated_requests(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/manage/accounts", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/login")
        async with http.get(gateway.url + "/manage", headers={"HX-Request": "true"}, allow_redirects=False) as resp:
            assert (resp.status, resp.headers["HX-Redirect"]) == (401, "/login")
        async with http.post(gateway.url + "/manage/accounts/bulk", allow_redirects=False) as resp:
            assert resp.status == 403
        async with http.get(gateway.url + "/", allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/manage"


async def test_csrf_and_origin_checks_on_unsafe_requests(gateway: LiveGateway, admin: AdminClient) -> None:
    await gateway.add_accounts("csrf-one")
    acc = gateway.services.pool.accounts()[0]
    resp = await admin.post(f"/manage/accounts/{acc.id}/toggle", csrf=False)
    assert resp.status == 403 and "CSRF" in await resp.text()
    resp = await admin.post(f"/manage/accounts/{acc.id}/toggle", headers={"X-CSRF-Token": "forged"}, csrf=False)
    assert resp.status == 403
    resp = await admin.post(f"/manage/accounts/{acc.id}/toggle", headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    resp = await admin.post(f"/manage/accounts/{acc.id}/toggle", headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403
    assert gateway.services.pool.accounts()[0].state == "active"
    resp = await admin.post(f"/manage/accounts/{acc.id}/toggle", headers={"Origin": gateway.url})
    assert resp.status == 200
    assert gateway.services.pool.accounts()[0].state == "disabled"
    # A plain form post may carry the token as a field instead of the header.
    resp = await admin.post(f"/manage/accounts/{acc.id}/toggle", {"csrf_token": admin.csrf}, csrf=False, htmx=False)
    assert resp.status == 200 and gateway.services.pool.accounts()[0].state == "active"


async def test_full_pages_and_htmx_fragments(admin: AdminClient) -> None:
    for path in ("/manage", "/manage/accounts", "/manage/settings", "/manage/keys", "/manage/cache"):
        async with admin.http.get(admin.url + path) as resp:
            page = await resp.text()
            assert resp.status == 200 and page.startswith("<!doctype html>"), path
            assert "HX-Request" in resp.headers["Vary"]
            assert "Content-Security-Policy" in resp.headers
            assert "<script>" not in page and " on" + "click=" not in page  # nothing inline for the CSP to block
    fragment = await admin.get("/manage", **{"HX-Request": "true", "HX-Target": "dashboard"})
    assert fragment.lstrip().startswith('<section id="dashboard"') and "<html" not in fragment
    table = await admin.get("/manage/accounts?q=x", **{"HX-Request": "true", "HX-Target": "accounts-table"})
    assert table.lstrip().startswith('<div id="accounts-table">')
    restore = await admin.get(
        "/manage/accounts",
        **{"HX-Request": "true", "HX-Target": "accounts-table", "HX-History-Restore-Request": "true"},
    )
    assert restore.startswith("<!doctype html>")


async def test_user_text_is_escaped(gateway: LiveGateway, admin: AdminClient) -> None:
    form = aiohttp.FormData()
    form.add_field("tier", "basic")
    form.add_field("tokens", "xss-token")
    await admin.post("/manage/accounts/add", form)
    acc = gateway.services.pool.accounts()[0]
    resp = await admin.post(
        f"/manage/accounts/{acc.id}/edit",
        {f"tags-{acc.id}": "<img src=x onerror=alert(1)>", f"note-{acc.id}": "<script>alert(1)</script>"},
    )
    row = await resp.text()
    assert "<script>alert(1)</script>" not in row and "&lt;script&gt;alert(1)&lt;/script&gt;" in row
    assert "<img src=x" not in row and "&lt;img src=x onerror=alert(1)&gt;" in row
    page = await admin.get("/manage/accounts")
    assert "<script>alert" not in page and "<img src=x" not in page


async def test_bulk_add_by_text_and_file_with_summary(gateway: LiveGateway, admin: AdminClient) -> None:
    form = aiohttp.FormData()
    form.add_field("tier", "super")
    form.add_field("tokens", "sso=paste-a\n# a comment\nsso-rw=paste-b; other=1\n\nnot valid!\npaste-a")
    form.add_field("file", b"file-a\nfile-b\n", filename="tokens.txt", content_type="text/plain")
    resp = await admin.post("/manage/accounts/add", form)
    body = await resp.text()
    assert resp.status == 200 and resp.headers["HX-Trigger"] == "accounts-changed"
    assert re.search(r'data-count="added">4<', body) and re.search(r'data-count="rejected">2<', body)
    assert "duplicate in this input" in body and "contains characters an SSO cookie cannot have" in body
    accounts = {a.token: a.tier for a in gateway.services.pool.accounts()}
    assert accounts == {"paste-a": "super", "paste-b": "super", "file-a": "super", "file-b": "super"}

    empty = await admin.post("/manage/accounts/add", aiohttp.FormData({"tier": "basic", "tokens": "  "}))
    assert empty.status == 422 and "Paste tokens or choose a file" in await empty.text()
    bad_tier = await admin.post("/manage/accounts/add", aiohttp.FormData({"tier": "gold", "tokens": "x"}))
    assert bad_tier.status == 422
    binary = aiohttp.FormData({"tier": "basic"})
    binary.add_field("file", b"\xff\xfe\x00bad", filename="t.bin")
    assert (await admin.post("/manage/accounts/add", binary)).status == 422


async def test_paging_filters_and_sorting(gateway: LiveGateway, admin: AdminClient) -> None:
    await gateway.add_accounts(*[f"list-{i:03d}" for i in range(120)])
    await gateway.add_accounts("super-zz", tier="super")
    page = await admin.get("/manage/accounts?size=50&page=3")
    assert re.search(r'id="page-number">3<', page) and "121</span> matching" in page
    assert page.count('name="ids"') == 21
    assert re.search(r'id="match-count">1<', await admin.get("/manage/accounts?tier=super"))
    assert re.search(r'id="match-count">10<', await admin.get("/manage/accounts?q=LIST-01"))  # case-insensitive
    beyond = await admin.get("/manage/accounts?page=99")
    assert re.search(r'id="page-number">3<', beyond)  # clamped to the last page
    nonsense = await admin.get("/manage/accounts?size=7&sort=evil&state=nope&page=-1")
    assert re.search(r'id="match-count">121<', nonsense)


async def test_bulk_actions_by_selection_and_by_filter(gateway: LiveGateway, admin: AdminClient) -> None:
    await gateway.add_accounts(*[f"bulk-{i}" for i in range(6)], "other-1", "other-2")
    ids = {a.token: a.id for a in gateway.services.pool.accounts()}
    form = [("action", "disable"), ("ids", str(ids["bulk-0"])), ("ids", str(ids["bulk-1"]))]
    resp = await admin.post("/manage/accounts/bulk", form)
    assert "Disabled 2 account(s)." in await resp.text() and resp.headers["HX-Trigger"] == "accounts-changed"
    states = {a.token: a.state for a in gateway.services.pool.accounts()}
    assert (states["bulk-0"], states["bulk-1"], states["bulk-2"]) == ("disabled", "disabled", "active")

    resp = await admin.post(
        "/manage/accounts/bulk", [("action", "tag"), ("bulk_tag", "batch"), ("scope", "matching"), ("q", "bulk-")]
    )
    assert "Tagged 6 account(s)" in await resp.text()
    assert sorted(a.token for a in gateway.services.pool.accounts() if "batch" in a.tags) == [
        f"bulk-{i}" for i in range(6)
    ]
    resp = await admin.post("/manage/accounts/bulk", [("action", "enable"), ("scope", "matching"), ("tag", "batch")])
    assert "Enabled 2 account(s)." in await resp.text()
    resp = await admin.post(
        "/manage/accounts/bulk", [("action", "delete"), ("scope", "matching"), ("state", "active"), ("q", "other")]
    )
    assert "Deleted 2 account(s)." in await resp.text()
    assert len(gateway.services.pool.accounts()) == 6

    assert (await admin.post("/manage/accounts/bulk", [("action", "delete")])).status == 422
    assert (await admin.post("/manage/accounts/bulk", [("action", "explode"), ("ids", "1")])).status == 422
    assert (await admin.post("/manage/accounts/bulk", [("action", "tag"), ("ids", str(ids["bulk-3"]))])).status == 422


async def test_row_actions_and_token_copy(gateway: LiveGateway, admin: AdminClient) -> None:
    await gateway.add_accounts("row-token-0123456789abcdef", "blocked-row-token")
    ids = {a.token: a.id for a in gateway.services.pool.accounts()}
    row_id = ids["row-token-0123456789abcdef"]
    row = await admin.get(f"/manage/accounts/{row_id}/row")
    assert "row-token-0123456789abcdef" not in row and "row-toke…abcdef" in row  # masked in the page
    assert await admin.get(f"/manage/accounts/{row_id}/token") == "row-token-0123456789abcdef"

    tested = await (await admin.post(f"/manage/accounts/{row_id}/test")).text()
    assert (
        "grok.com accepted the session (basic tier): fast 30 of 30, auto 20 of 20, expert 0 of 0, heavy 0 of 0 "
        "queries left per mode. The account is active."
    ) in tested
    refreshed = await (await admin.post(f"/manage/accounts/{row_id}/refresh")).text()
    assert 'class="result' not in refreshed and ">30<" in refreshed  # quiet on success
    blocked = await (await admin.post(f"/manage/accounts/{ids['blocked-row-token']}/refresh")).text()
    assert "has blocked this account" in blocked and "state-blocked" in blocked

    edit_form = await admin.get(f"/manage/accounts/{row_id}/edit")
    assert f'name="tags-{row_id}"' in edit_form
    deleted = await admin.post(f"/manage/accounts/{row_id}/delete")
    assert deleted.status == 200 and await deleted.text() == "" and deleted.headers["HX-Trigger"] == "accounts-changed"
    gone = await admin.post(f"/manage/accounts/{row_id}/test")
    assert gone.status == 404
    async with admin.http.get(f"{admin.url}/manage/accounts/{row_id}/token") as resp:
        assert resp.status == 404


async def test_learned_windows_and_tier_show_in_the_accounts_page(
    gateway: LiveGateway, admin: AdminClient, fake: FakeGrok
) -> None:
    fake.add_account("learned-row", tier="super")
    await gateway.add_accounts("learned-row")  # the operator guessed basic
    (acc,) = gateway.services.pool.accounts()
    row = await admin.get(f"/manage/accounts/{acc.id}/row")
    assert "<td>basic</td>" in row and '<td class="num">?' in row  # nothing learned yet
    # One chat: its background reconciliation reads every base window and infers the tier from the totals.
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    try:
        await sdk.chat.completions.create(model="grok-fast", messages=[{"role": "user", "content": "hi"}])
    finally:
        await sdk.close()
    deadline = time.monotonic() + 3
    while (stored := await gateway.services.store.get_account("learned-row")) is None or stored.tier != "super":
        assert time.monotonic() < deadline, "the tier was not learned"
        await asyncio.sleep(0.02)
    await gateway.services.reload()
    row = await admin.get(f"/manage/accounts/{acc.id}/row")
    assert "<td>super</td>" in row
    cell = re.search(r'<td class="num">(.*?)</td>', row)
    assert cell is not None
    assert re.sub(r"<[^>]+>", " ", cell.group(1)).split() == ["139", "50", "auto", "50", "expert", "0", "heavy"]
    assert re.search(r'id="match-count">1<', await admin.get("/manage/accounts?tier=super"))


async def test_exports_csv_and_json(gateway: LiveGateway, admin: AdminClient) -> None:
    await gateway.add_accounts("exp-basic-1", "exp-basic-2")
    await gateway.add_accounts("exp-super-1", tier="super")
    acc = next(a for a in gateway.services.pool.accounts() if a.token == "exp-basic-1")
    await admin.post(f"/manage/accounts/{acc.id}/edit", {f"tags-{acc.id}": "a, b", f"note-{acc.id}": "=SUM(A1)"})

    async with admin.http.get(admin.url + "/manage/accounts/export.csv?q=exp-basic") as resp:
        assert resp.headers["Content-Disposition"].startswith('attachment; filename="grok2api-accounts-')
        text = (await resp.read()).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert sorted(r["token"] for r in rows) == ["exp-basic-1", "exp-basic-2"]
    first = next(r for r in rows if r["token"] == "exp-basic-1")
    assert (first["tags"], first["note"], first["tier"]) == ("a,b", "'=SUM(A1)", "basic")  # no formula injection

    async with admin.http.get(admin.url + f"/manage/accounts/export.json?ids={acc.id}") as resp:
        doc = await resp.json(content_type=None)
    assert list(doc["ssoNormal"]) == ["exp-basic-1"] and doc["ssoSuper"] == {}
    async with admin.http.get(admin.url + "/manage/accounts/export.json") as resp:
        doc = await resp.json(content_type=None)
    again = parse_input([json.dumps(doc)], "basic")  # the export imports again, tiers and tags kept
    assert {(a.token, a.tier) for a in again.accounts} == {
        ("exp-basic-1", "basic"),
        ("exp-basic-2", "basic"),
        ("exp-super-1", "super"),
    }
    assert next(a for a in again.accounts if a.token == "exp-basic-1").tags == ["a", "b"]


async def test_settings_page_secrets_locks_and_validation(gateway: LiveGateway, admin: AdminClient) -> None:
    await gateway.settings(api_key="sk-page-secret")
    page = await admin.get("/manage/settings")
    assert "sk-page-secret" not in page and "env-clearance" not in page
    assert re.search(r'id="s-cf_clearance"[^>]*disabled', page)  # set by GROK2API_CF_CLEARANCE: locked
    assert "locked by the environment" in page

    resp = await admin.post(
        "/manage/settings/grok",
        {"filtered_tags": "a,b", "show_thinking": "false", "think_format": "reasoning_content", "temporary": "true"},
    )
    assert resp.status == 200 and "Saved (filtered_tags, show_thinking)" in await resp.text()
    assert (gateway.services.settings.filtered_tags, gateway.services.settings.show_thinking) == ("a,b", False)

    resp = await admin.post(
        "/manage/settings/timeouts", {"stream_chunk_timeout": "-5", "stream_first_response_timeout": "abc"}
    )
    body = await resp.text()
    assert resp.status == 422 and body.count('class="field-error"') == 2 and 'value="abc"' in body
    assert gateway.services.settings.stream_first_response_timeout == 30

    # Secrets: blank keeps, the mask keeps, a value replaces, "clear" empties.
    assert "Nothing changed." in await (await admin.post("/manage/settings/global", {"api_key": ""})).text()
    await admin.post("/manage/settings/global", {"api_key": "sk-next"})
    assert gateway.services.settings.api_key == "sk-next"
    await admin.post("/manage/settings/global", {"clear_api_key": "1"})
    assert gateway.services.settings.api_key == ""
    resp = await admin.post("/manage/settings/proxy", {"cf_clearance": "sneaky"})
    assert "Nothing changed." in await resp.text() and gateway.services.settings.cf_clearance == "env-clearance"
    assert (await admin.post("/manage/settings/nope", {})).status == 404


async def test_password_change_signs_other_sessions_out(tmp_path: Path, fake: FakeGrok) -> None:
    gateway = LiveGateway(tmp_path / "data", fake.base_url, fake.assets_url, admin_password="")
    await gateway.start()
    first, second = AdminClient(gateway.url), AdminClient(gateway.url)
    try:
        from grok2api.passwords import ADMIN_HASH_KEY, hash_password

        await gateway.services.store.save_settings({ADMIN_HASH_KEY: hash_password("old-password")})
        assert (await first.login("old-password")).status == 303
        assert (await second.login("old-password")).status == 303
        assert "Change password" in await first.get("/manage/settings")
        wrong = await first.post(
            "/manage/settings/password", {"current": "nope", "new": "new-password-1", "confirm": "new-password-1"}
        )
        assert wrong.status == 422 and "current password is wrong" in await wrong.text()
        short = await first.post(
            "/manage/settings/password", {"current": "old-password", "new": "short", "confirm": "short"}
        )
        assert short.status == 422 and "at least 8" in await short.text()
        done = await first.post(
            "/manage/settings/password",
            {"current": "old-password", "new": "new-password-1", "confirm": "new-password-1"},
        )
        assert "1 other session(s) signed out" in await done.text()
        await first.get("/manage")  # still signed in
        async with second.http.get(gateway.url + "/manage", allow_redirects=False) as resp:
            assert resp.status == 303
        assert (await second.login("old-password")).status == 401
        assert (await second.login("new-password-1")).status == 303
    finally:
        await first.close()
        await second.close()
        await gateway.stop()


async def test_logout_ends_the_session(admin: AdminClient) -> None:
    resp = await admin.post("/logout")
    assert resp.headers["HX-Redirect"] == "/login"
    async with admin.http.get(admin.url + "/manage", allow_redirects=False) as after:
        assert after.status == 303


async def test_keys_page_create_validate_and_revoke(gateway: LiveGateway, admin: AdminClient) -> None:
    bad = await admin.post(
        "/manage/keys", [("name", ""), ("rpm", "lots"), ("expires", "2001-01-01"), ("models", "gpt-9")]
    )
    body = await bad.text()
    assert bad.status == 422
    for field in ("name:", "rpm:", "expires:", "models:"):
        assert field in body
    created = await admin.post("/manage/keys", [("name", "team <a>"), ("rpm", "5"), ("models", "grok-3-fast")])
    page = await created.text()
    secret = re.search(r'id="new-key">(sk-g2a-[^<]+)<', page)
    assert secret and created.headers["HX-Trigger"] == "keys-changed" and "team &lt;a&gt;" in page
    stored = (await gateway.services.store.list_client_keys())[0]
    assert (stored.name, stored.models, stored.rpm) == ("team <a>", ["grok-3-fast"], 5)
    assert secret.group(1) not in await admin.get("/manage/keys")  # shown once only
    assert gateway.services.keys.authenticate(f"Bearer {secret.group(1)}", "") is not None  # applied at once

    revoked = await admin.post(f"/manage/keys/{stored.id}/revoke")
    assert "key-state-revoked" in await revoked.text()
    assert (await admin.post("/manage/keys/unknown/revoke")).status == 404


async def test_cache_page_and_dashboard_numbers(gateway: LiveGateway, admin: AdminClient) -> None:
    (gateway.boot.data_dir / "videos").mkdir(parents=True, exist_ok=True)
    (gateway.boot.data_dir / "videos" / "v.mp4").write_bytes(b"\0" * 2048)
    page = await admin.get("/manage/cache")
    assert re.search(r'id="cache-videos">2.0 KB<', page)
    cleared = await (await admin.post("/manage/cache/clear/videos")).text()
    assert "1 file(s) deleted" in cleared and re.search(r'id="cache-videos">0.0 KB<', cleared)
    assert (await admin.post("/manage/cache/clear/everything")).status == 404

    await gateway.add_accounts("dash-1", "dash-2")
    gateway.services.metrics.record("grok-3-fast", True)
    gateway.services.metrics.record("grok-3-fast", False)
    dash = await admin.get("/manage", **{"HX-Request": "true", "HX-Target": "dashboard"})
    assert re.search(r'data-state="active">2<', dash)
    assert re.search(r'<span class="ok">1 ok</span> · <span class="err">1 failed</span>', dash)
    assert dash.count('<g class="bar"') == 24 and 'data-ok="1" data-error="1"' in dash


async def test_malformed_numbers_and_uploads_are_client_errors_never_500(
    gateway: LiveGateway, admin: AdminClient
) -> None:
    # "²".isdigit() is True but int("²") fails; 5000 digits exceed Python's int-parsing limit.
    await gateway.add_accounts("numbers-one")
    huge = "9" * 5000
    for path in (
        f"/manage/accounts?page={huge}",
        "/manage/accounts?page=%C2%B2&size=%C2%B2",
        f"/manage/accounts/export.csv?ids={huge}",
        "/manage/accounts/export.json?ids=%C2%B2",
    ):
        async with admin.http.get(gateway.url + path, allow_redirects=False) as resp:
            assert resp.status == 200, path[:60]
    async with admin.http.get(gateway.url + f"/manage/accounts/{huge}/row", allow_redirects=False) as resp:
        assert resp.status == 404
    for path, data in (
        ("/manage/accounts/bulk", {"action": "delete", "ids": "²"}),
        ("/manage/accounts/bulk", {"action": "delete", "ids": huge}),
        ("/manage/accounts/bulk", {"action": "disable", "scope": "matching", "page": "²"}),
        ("/manage/keys", {"name": "n", "rpm": "²"}),
        ("/manage/keys", {"name": "n", "rpm": huge}),
        ("/manage/accounts/add", {"tokens": "[" * 100_000}),
        ("/manage/accounts/add", {"tokens": '{"ssoNormal": {"t-1": {"tags": 5}}}'}),
        (f"/manage/accounts/{huge}/toggle", {}),
    ):
        resp = await admin.post(path, data)
        assert resp.status < 500, (path[:60], resp.status)
    await gateway.services.reload(force=True)
    states = {a.token: (a.state, a.tags) for a in gateway.services.pool.accounts()}
    # Only the "matching" bulk ran; the token.json with unusable tags was imported without them.
    assert states == {"numbers-one": ("disabled", []), "t-1": ("active", [])}


async def test_static_files_carry_the_security_headers(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/static/app.js", "/static/app.css", "/static/htmx-2.0.11.min.js"):
            async with http.get(gateway.url + path) as resp:
                assert resp.status == 200, path
                assert "frame-ancestors 'none'" in resp.headers.get("Content-Security-Policy", ""), path
                assert resp.headers.get("X-Content-Type-Options") == "nosniff", path
                assert resp.headers.get("X-Frame-Options") == "DENY", path
        for path in ("/static/../pyproject.toml", "/static/%2e%2e/%2e%2e/pyproject.toml", "/static/..%2fREADME.md"):
            async with http.get(gateway.url + path) as resp:
                assert resp.status == 404, path


async def test_sliding_renewal_also_renews_the_cookie(gateway: LiveGateway, admin: AdminClient) -> None:
    """The store extends a session in use; the browser's cookie must be extended too, or it is dropped
    after 24 h whatever the store says."""
    token = next(c.value for c in admin.http.cookie_jar if c.key == "g2a_admin")
    found = await gateway.services.store.get_session(session_hash(token))
    assert found is not None
    found.expires_at = time.time() + 600  # past half-life: the next request slides it
    await gateway.services.store.put_session(found)
    async with admin.http.get(gateway.url + "/manage", allow_redirects=False) as resp:
        assert resp.status == 200
        cookie = next((c for c in resp.headers.getall("Set-Cookie", []) if c.startswith("g2a_admin=")), "")
    assert cookie.startswith(f"g2a_admin={token};") and f"Max-Age={int(SESSION_TTL)}" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    async with admin.http.get(gateway.url + "/manage", allow_redirects=False) as resp:
        assert not [c for c in resp.headers.getall("Set-Cookie", []) if c.startswith("g2a_admin=")]
    found = await gateway.services.store.get_session(session_hash(token))
    assert found is not None
    found.expires_at = time.time() + 600
    await gateway.services.store.put_session(found)
    async with admin.http.get(gateway.url + "/login", allow_redirects=False) as resp:  # signed in: redirected
        assert resp.status == 303
        assert [c for c in resp.headers.getall("Set-Cookie", []) if c.startswith(f"g2a_admin={token};")]
    # Signing out in a request that also slides the session must still clear the cookie.
    found = await gateway.services.store.get_session(session_hash(token))
    assert found is not None
    found.expires_at = time.time() + 600
    await gateway.services.store.put_session(found)
    resp = await admin.post("/logout")
    cookies = [c for c in resp.headers.getall("Set-Cookie", []) if c.startswith("g2a_admin=")]
    assert len(cookies) == 1 and "Max-Age=0" in cookies[0]
    assert await gateway.services.store.get_session(session_hash(token)) is None


async def test_password_change_in_the_pages_also_ends_api_bearer_sessions(tmp_path: Path, fake: FakeGrok) -> None:
    from grok2api.passwords import ADMIN_HASH_KEY, hash_password

    gateway = LiveGateway(tmp_path / "data", fake.base_url, fake.assets_url, admin_password="")
    await gateway.start()
    page = AdminClient(gateway.url)
    try:
        await gateway.services.store.save_settings({ADMIN_HASH_KEY: hash_password("old-password")})
        assert (await page.login("old-password")).status == 303
        async with aiohttp.ClientSession() as http:
            body = {"username": "admin", "password": "old-password"}
            async with http.post(gateway.url + "/api/login", json=body) as resp:
                bearer = {"Authorization": "Bearer " + (await resp.json())["token"]}
            async with http.get(gateway.url + "/api/stats", headers=bearer) as resp:
                assert resp.status == 200
            done = await page.post(
                "/manage/settings/password",
                {"current": "old-password", "new": "new-password-1", "confirm": "new-password-1"},
            )
            assert done.status == 200
            async with http.get(gateway.url + "/api/stats", headers=bearer) as resp:
                assert resp.status == 401
            # And the page's own cookie cannot drive the JSON API, from any origin.
            cookie = next(c.value for c in page.http.cookie_jar if c.key == "g2a_admin")
            async with http.post(
                gateway.url + "/api/cache/clear", headers={"Cookie": f"g2a_admin={cookie}", "Origin": gateway.url}
            ) as resp:
                assert resp.status == 401
    finally:
        await page.close()
        await gateway.stop()


def _multipart(charset: str, fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A form-data body declared in ``charset``: Starlette decodes every field with that codec."""
    boundary = "form-boundary-7f3a"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode("ascii")
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}; charset={charset}"}


# Each decodes to a lone surrogate: "+2AA-" is U+D800 in UTF-7, and unicode_escape reads the escape itself.
ODD_CHARSETS = [("utf-7", "+2AA-"), ("unicode_escape", "\\ud800"), ("raw_unicode_escape", "\\udc00")]


@pytest.mark.parametrize(("charset", "surrogate"), ODD_CHARSETS)
async def test_forms_holding_lone_surrogates_are_refused_not_a_500(
    gateway: LiveGateway, admin: AdminClient, charset: str, surrogate: str
) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(gateway.url + "/login") as resp:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        assert token
        for field in ("username", "password", "csrf_token"):
            fields = {"username": "admin", "password": PASSWORD, "csrf_token": token.group(1), field: surrogate}
            body, headers = _multipart(charset, fields)
            async with http.post(gateway.url + "/login", data=body, headers=headers, allow_redirects=False) as resp:
                assert resp.status == 400, (field, resp.status)
                assert "not valid Unicode" in await resp.text()
    for path, fields in (
        ("/manage/keys", {"name": surrogate}),
        ("/manage/keys", {"name": "ok", "csrf_token": surrogate}),
        ("/manage/accounts/add", {"tokens": "abc\n" + surrogate}),
        ("/manage/settings/general", {"base_url": surrogate}),
    ):
        body, headers = _multipart(charset, fields)
        resp = await admin.post(path, body, headers=headers)
        assert resp.status == 400, (path, fields, resp.status)
        assert "not valid Unicode" in await resp.text()
    assert await gateway.services.store.list_client_keys() == []


async def test_json_pasted_into_the_accounts_form_may_not_hold_lone_surrogates(
    gateway: LiveGateway, admin: AdminClient
) -> None:
    pasted = '{"ssoNormal": {"tok-surrogate": {"note": "\\ud800", "tags": ["\\udc00"]}}}'
    resp = await admin.post("/manage/accounts/add", {"tokens": pasted})
    assert resp.status == 200 and "not valid JSON" in await resp.text()
    resp = await admin.post("/manage/accounts/add", {"tokens": '["\\ud800"]'})
    assert resp.status == 200 and "not valid JSON" in await resp.text()
    assert await gateway.services.store.list_accounts() == []

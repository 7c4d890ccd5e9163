"""The admin in a real headless Chromium (Debian chromium driven by Playwright), against the live
gateway and the fake grok.com. Each test saves a screenshot of the page it covers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright, expect

from grok2api.testing.fake_grok import FakeGrok

from harness import ADMIN_PASSWORD, LiveGateway, requires

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).parent / "screenshots"
PASSWORD = ADMIN_PASSWORD  # the gateway fixture's
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = requires("chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def first_start_gateway(tmp_path: Path, fake: FakeGrok) -> AsyncIterator[LiveGateway]:
    """No admin password configured: the first start generates one and logs it."""
    async with LiveGateway(tmp_path / "data", fake.base_url, fake.assets_url, admin_password="") as gateway:
        yield gateway


async def _accept(dialog: Dialog) -> None:
    await dialog.accept()


CONSOLE_ERRORS: dict[int, list[str]] = {}


async def new_page(browser: Browser) -> Page:
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(10_000)
    page.on("dialog", _accept)  # hx-confirm and data-confirm dialogs: say yes
    errors = CONSOLE_ERRORS.setdefault(id(page), [])
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page


async def shot(page: Page, name: str) -> None:
    """Save a screenshot, and check the page ran without script errors or CSP violations."""
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    # 401 on the login page and 4xx on refused requests are expected; anything else is a defect.
    unexpected = [e for e in CONSOLE_ERRORS.get(id(page), []) if "status of 4" not in e]
    assert unexpected == []


async def sign_in(page: Page, url: str, password: str = PASSWORD, username: str = "admin") -> None:
    await page.goto(f"{url}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def test_first_start_password_login_wrong_password_and_logout(
    browser: Browser, first_start_gateway: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="grok2api.admin")
    page = await new_page(browser)
    await page.goto(f"{first_start_gateway.url}/manage")
    await expect(page).to_have_url(re.compile(r"/login$"))  # not signed in: sent to the login page
    # The password is logged while the gateway starts (fixture setup), before the first request.
    records = caplog.get_records("setup") + caplog.records
    generated = [m for r in records if (m := re.search(r"with password: (\S+)", r.getMessage()))]
    assert len(generated) == 1, "the first start logs one generated password"
    password = generated[0].group(1)

    await sign_in(page, first_start_gateway.url, password="admin")  # the reference's default must not work
    await expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    await shot(page, "login")

    await sign_in(page, first_start_gateway.url, password=password)
    await expect(page).to_have_url(re.compile(r"/manage$"))
    await expect(page.locator("#card-accounts .big")).to_have_text("0")
    await expect(page.locator("#requests-chart .bar")).to_have_count(24)
    # The dashboard refreshes itself (htmx polling): accounts added elsewhere show up without a reload.
    await first_start_gateway.add_accounts("live-1", "live-2")
    await expect(page.locator("#card-accounts .big")).to_have_text("2", timeout=8000)
    cookie = next(c for c in await page.context.cookies() if c["name"] == "g2a_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    await page.click("#logout")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.goto(f"{first_start_gateway.url}/manage")
    await expect(page).to_have_url(re.compile(r"/login$"))


async def test_accounts_bulk_add_filter_page_edit_test_and_delete(
    browser: Browser, gateway: LiveGateway, fake: FakeGrok, tmp_path: Path
) -> None:
    page = await new_page(browser)
    await sign_in(page, gateway.url)
    await page.goto(f"{gateway.url}/manage/accounts")

    # 1 000 basic tokens pasted (plus a bad line and a duplicate), 1 000 super tokens from a token.json file.
    pasted = [f"sso=paste-{i:04d}-token" for i in range(1000)] + ["not a token!", "sso=paste-0000-token"]
    await page.click("#add-panel summary")
    # Put the text in as a paste does (page.fill types 25 kB into a textarea far too slowly).
    await page.locator("#add-tokens").evaluate("(el, text) => { el.value = text; }", "\n".join(pasted))
    await page.click("#add-form button[type=submit]")
    await expect(page.locator("#add-summary [data-count=added]")).to_have_text("1000")
    await expect(page.locator("#add-summary [data-count=rejected]")).to_have_text("2")
    await expect(page.locator("#match-count")).to_have_text("1000")

    upload = tmp_path / "token.json"
    upload.write_text(
        json.dumps({"ssoNormal": {}, "ssoSuper": {f"file-{i:04d}-token": {"tags": ["imported"]} for i in range(1000)}})
    )
    await page.set_input_files("#add-file", str(upload))
    await page.click("#add-form button[type=submit]")
    await expect(page.locator("#add-summary [data-count=added]")).to_have_text("1000")
    await expect(page.locator("#match-count")).to_have_text("2000")

    # Filter by tier, then search a fragment, then page through.
    await page.select_option("#filters select[name=tier]", "super")
    await expect(page.locator("#match-count")).to_have_text("1000")
    await page.fill("#q", "paste-09")
    await page.select_option("#filters select[name=tier]", "")
    await expect(page.locator("#match-count")).to_have_text("100")
    await page.fill("#q", "")
    await expect(page.locator("#match-count")).to_have_text("2000")
    await page.click("[data-page='2']")
    await expect(page.locator("#page-number")).to_have_text("2")
    assert "page=2" in page.url
    await page.click("[data-page='40']")
    await expect(page.locator("#page-number")).to_have_text("40")

    # The copy button puts the full token (never rendered in the page) on the clipboard.
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.url)
    first_row = page.locator("table.accounts tbody tr").first
    masked = await first_row.locator("code").inner_text()
    await first_row.locator("button.copy").click()
    await expect(page.locator(".toast")).to_have_text("Copied to the clipboard.")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(masked.split("…")[0]) and "…" not in copied
    assert copied in {a.token for a in gateway.services.pool.accounts()}
    assert copied not in await page.content()

    # Tag and note one account, picking a tag from the palette too.
    await page.fill("#q", "paste-0042")
    await expect(page.locator("#match-count")).to_have_text("1")
    row = page.locator("table.accounts tbody tr").first
    await row.get_by_role("button", name="Edit").click()
    await page.fill("[id^=tags-]", "vip")
    await page.click(".palette [data-tag=imported]")
    await page.fill("[id^=note-]", "bought <b>2025</b>")
    await page.get_by_role("button", name="Save").click()
    await expect(row.locator(".tag")).to_have_text(["vip", "imported"])
    await expect(row.locator(".note")).to_have_text("bought <b>2025</b>")  # escaped, not markup

    # Test it live against the fake grok.com, then one whose credentials grok.com rejects.
    await row.get_by_role("button", name="Test").click()
    await expect(row.locator(".result")).to_contain_text("grok.com accepted the session (basic tier)")
    await expect(row.locator("td.num")).to_contain_text("30")  # every window read live
    await expect(row.locator("td.num .muted")).to_have_text(
        [  # each window the live check read, chat modes and Imagine's (a kind the tier lacks shows 0)
            "20 auto",
            "0 expert",
            "0 heavy",
            "40 imagine-image",
            "40 imagine-image-edit",
            "0 imagine-image-pro",
            "20 imagine-video",
            "0 imagine-video-720p",
        ]
    )
    await page.fill("#add-tokens", "invalid-session-token")
    await page.click("#add-form button[type=submit]")
    # The form emptied itself after the upload, so the file is not sent a second time.
    await expect(page.locator("#add-summary")).to_contain_text("1 added · 0 updated · 0 rejected")
    await page.fill("#q", "invalid-session")
    bad = page.locator("table.accounts tbody tr").first
    await expect(bad.locator("code")).to_have_text("invalid-…-token")
    await bad.get_by_role("button", name="Test").click()
    await expect(bad.locator(".result")).to_contain_text("Sign in to grok.com again and replace the token")
    await expect(bad.locator(".state")).to_have_text("invalid")
    await shot(page, "accounts")

    # Delete some: tick three on the first page and confirm.
    await page.fill("#q", "paste-00")
    await expect(page.locator("#match-count")).to_have_text("100")
    boxes = page.locator("table.accounts tbody input[name=ids]")
    for i in range(3):
        await boxes.nth(i).check()
    await page.click("#bulk button[value=delete]")
    await expect(page.locator("#bulk-result")).to_have_text("Deleted 3 account(s).")
    await expect(page.locator("#match-count")).to_have_text("97")
    assert len(gateway.services.pool.accounts()) == 2001 - 3


async def test_setting_change_takes_effect_on_chat(browser: Browser, gateway: LiveGateway) -> None:
    await gateway.add_accounts("super-settings-token", tier="super")  # grok-4-fast is the auto mode: super
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    try:
        before = await sdk.chat.completions.create(
            model="grok-4-fast", messages=[{"role": "user", "content": "[[think]] hi"}]
        )
        assert getattr(before.choices[0].message, "reasoning_content", None)

        page = await new_page(browser)
        await sign_in(page, gateway.url)
        await page.goto(f"{gateway.url}/manage/settings")
        group = page.locator("#group-grok")
        await group.locator("select[name=show_thinking]").select_option("false")
        await group.get_by_role("button", name="Save").click()
        await expect(page.locator("#group-grok .notice")).to_contain_text("Saved (show_thinking)")

        timeouts = page.locator("#group-timeouts")
        await timeouts.locator("input[name=stream_chunk_timeout]").fill("soon")
        await timeouts.get_by_role("button", name="Save").click()
        await expect(page.locator("#field-stream_chunk_timeout .field-error")).to_be_visible()
        await expect(page.locator("#group-timeouts input[name=stream_chunk_timeout]")).to_have_value("soon")
        await shot(page, "settings")

        after = await sdk.chat.completions.create(
            model="grok-4-fast", messages=[{"role": "user", "content": "[[think]] hi"}]
        )
        assert not getattr(after.choices[0].message, "reasoning_content", None)
        assert after.choices[0].message.content
        assert gateway.services.settings.stream_chunk_timeout == 120.0  # the bad value was not stored
    finally:
        await sdk.close()


async def test_api_key_create_use_and_revoke(browser: Browser, gateway: LiveGateway) -> None:
    await gateway.add_accounts("keys-token")
    page = await new_page(browser)
    await sign_in(page, gateway.url)
    await page.goto(f"{gateway.url}/manage/keys")
    await page.fill("#key-name", "ci robot")
    await page.fill("#key-rpm", "100")
    await page.check("input[name=models][value=grok-3-fast]")
    await page.click("#key-form button[type=submit]")
    secret = (await page.locator("#new-key").inner_text()).strip()
    assert secret.startswith("sk-g2a-")
    await expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    await expect(page.locator("#keys-table tbody tr td").nth(2)).to_have_text("grok-3-fast")
    await shot(page, "keys")

    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
    try:
        reply = await sdk.chat.completions.create(model="grok-3-fast", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        with pytest.raises(openai.PermissionDeniedError):  # outside the key's model allowlist
            await sdk.chat.completions.create(model="grok-4-fast", messages=[{"role": "user", "content": "hi"}])

        await page.get_by_role("button", name="Revoke").click()
        await expect(page.locator("#keys-table .key-state-revoked")).to_have_text("revoked")
        await expect(page.locator("#keys-table tbody tr td").nth(8)).to_have_text("1 ok · 0 failed")  # usage per key
        with pytest.raises(openai.AuthenticationError):
            await sdk.chat.completions.create(model="grok-3-fast", messages=[{"role": "user", "content": "hi"}])
    finally:
        await sdk.close()


async def test_cache_clear_with_confirmation_and_dashboard(browser: Browser, gateway: LiveGateway) -> None:
    images = gateway.boot.data_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    (images / "users-u1-generated-a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 4096)
    page = await new_page(browser)
    await sign_in(page, gateway.url)
    await expect(page.locator("#card-cache .big")).to_have_text("4.0 KB")
    await shot(page, "dashboard")
    await page.goto(f"{gateway.url}/manage/cache")
    await expect(page.locator("#cache-images")).to_have_text("4.0 KB")
    await page.get_by_role("button", name="Clear all").click()
    await expect(page.locator("#cache-notice")).to_contain_text("1 image(s)")
    await expect(page.locator("#cache-total")).to_have_text("0.0 KB")
    assert not any(images.iterdir())
    await shot(page, "cache")


async def test_post_without_csrf_token_is_refused(browser: Browser, gateway: LiveGateway) -> None:
    await gateway.add_accounts("csrf-token")
    page = await new_page(browser)
    await sign_in(page, gateway.url)
    await expect(page).to_have_url(re.compile(r"/manage$"))
    # The browser's own cookies, but no CSRF header: refused, and nothing changes.
    account_id = gateway.services.pool.accounts()[0].id
    refused: Any = await page.request.post(f"{gateway.url}/manage/accounts/{account_id}/delete")
    assert refused.status == 403
    assert len(gateway.services.pool.accounts()) == 1
    token = await page.get_attribute("body", "hx-headers")
    assert token is not None
    allowed = await page.request.post(f"{gateway.url}/manage/accounts/{account_id}/delete", headers=json.loads(token))
    assert allowed.status == 200
    assert gateway.services.pool.accounts() == []


async def test_diagnose_button_runs_the_doctor_and_swaps_in_the_result(
    browser: Browser, gateway: LiveGateway, fake: FakeGrok
) -> None:
    await gateway.add_accounts("diag-basic-1", "diag-basic-2")
    chosen = next(a for a in gateway.services.pool.accounts() if a.token == "diag-basic-2")
    page = await new_page(browser)
    await sign_in(page, gateway.url)
    await page.click("nav >> text=Diagnose")
    section = page.locator("#egress-direct")
    await expect(section.locator("[data-summary]")).to_have_text("Not checked yet.")

    # Cloudflare challenges the home page only: the verdict names it and its fix, and the chat still works.
    fake.push_fault("home-403-cf")
    await page.select_option("#diagnose-account", str(chosen.id))
    await section.get_by_role("button", name="Run").click()
    await expect(section.locator("[data-summary]")).to_have_text("A chat turn worked.")
    home = section.locator("tr[data-step=home_page]")
    await expect(home).to_have_attribute("data-code", "cloudflare_challenge")
    await expect(home).to_contain_text("Cloudflare challenged this egress")
    await expect(home.locator(".fix")).to_contain_text("cf_clearance")
    assert [s.token for s in fake.mgw_sessions()] == ["diag-basic-2"]
    await shot(page, "diagnose")

    # Run again: every step passes, and the page keeps the result after a reload.
    await page.locator("#egress-direct").get_by_role("button", name="Run again").click()
    await expect(page.locator("#egress-direct tr.step-fail")).to_have_count(0)
    await expect(page.locator("#egress-direct tr.step-ok")).to_have_count(9)
    await page.reload()
    await expect(page.locator("#egress-direct tr.step-ok")).to_have_count(9)

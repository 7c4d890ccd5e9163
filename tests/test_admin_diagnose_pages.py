"""The Diagnose page over HTTP: the last result per egress (whoever ran it), running the doctor again with a chosen
account (an htmx fragment, behind the session and CSRF checks), and the dashboard's canary banner."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from grok2api.diagnose.records import load_reports, save_report
from grok2api.diagnose.report import Report, Step
from grok2api.testing.fake_grok import FakeGrok

from harness import AdminClient, LiveGateway


@pytest.fixture
async def admin(gateway: LiveGateway) -> AsyncIterator[AdminClient]:
    client = AdminClient(gateway.url)
    assert (await client.login()).status == 303
    try:
        yield client
    finally:
        await client.close()


def steps_of(html: str) -> dict[str, str]:
    """Each step row's name and verdict code."""
    return dict(re.findall(r'data-step="([a-z_]+)" data-code="([a-z_]+)"', html))


async def test_run_again_shows_every_step_and_keeps_the_result(
    gateway: LiveGateway, admin: AdminClient, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-diag-basic-1", "tok-diag-basic-2")
    page = await admin.get("/manage/diagnose")
    assert 'id="egress-direct"' in page and "Not checked yet." in page
    assert 'href="/manage/diagnose" class="active"' in page  # its tab in the navigation
    assert "<script>" not in page  # nothing inline for the CSP to block: the button is plain htmx attributes
    second = next(a for a in gateway.services.pool.accounts() if a.token == "tok-diag-basic-2")

    resp = await admin.post("/manage/diagnose/run", {"egress": "direct", "account": str(second.id)})
    fragment = await resp.text()
    assert resp.status == 200 and fragment.lstrip().startswith('<section class="card egress" id="egress-direct">')
    assert "<html" not in fragment and "A chat turn worked." in fragment
    assert set(steps_of(fragment).values()) == {"ok"} and len(steps_of(fragment)) == 9
    assert [s.token for s in fake.mgw_sessions()] == ["tok-diag-basic-2"]  # the chosen account

    # Any worker shows it: the result is in the store.
    [stored] = (await load_reports(gateway.services.store)).values()
    assert stored.ok and stored.account.startswith("tok-di")
    page = await admin.get("/manage/diagnose")
    assert "A chat turn worked." in page and "Not checked yet." not in page


async def test_a_failure_shows_its_verdict_and_fix_once(
    gateway: LiveGateway, admin: AdminClient, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-diag-basic-3")
    fake.require_cf_clearance = "needed"
    resp = await admin.post("/manage/diagnose/run", {"egress": "direct", "account": ""})
    fragment = await resp.text()
    assert resp.status == 200 and "No chat turn worked." in fragment
    assert steps_of(fragment)["home_page"] == "cloudflare_challenge"
    assert "Cloudflare challenged this egress" in fragment
    assert fragment.count("into the cf_clearance setting") == 1 and "Fix: the same as above." in fragment


async def test_unknown_egress_and_missing_csrf_are_refused(gateway: LiveGateway, admin: AdminClient) -> None:
    resp = await admin.post("/manage/diagnose/run", {"egress": "nowhere"})
    assert resp.status == 404 and "no egress named" in await resp.text()
    resp = await admin.post("/manage/diagnose/run", {"egress": "direct"}, csrf=False)
    assert resp.status == 403
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(gateway.url + "/manage/diagnose", allow_redirects=False) as page:
            assert page.status == 303 and page.headers["Location"] == "/login"


async def test_a_result_saved_elsewhere_is_shown(gateway: LiveGateway, admin: AdminClient) -> None:
    steps = [Step(name="tcp", ok=False, verdict="could not connect to <b>x</b>", fix="check it", code="tcp_failed")]
    report = Report(egress="direct", transport="aiohttp, direct", account="tok-ab…1234", at=1.0, steps=steps)
    await save_report(gateway.services.store, report)
    page = await admin.get("/manage/diagnose")
    assert "could not connect to &lt;b&gt;x&lt;/b&gt;" in page and "Fix: check it" in page  # escaped
    assert steps_of(page) == {"tcp": "tcp_failed"}


async def test_the_dashboard_banner_and_metrics_follow_the_canary(
    gateway: LiveGateway, admin: AdminClient, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-diag-basic-4")
    page = await admin.get("/manage")
    assert 'class="banner"' not in page
    fake.push_fault("mgw-403-cf")
    run = await gateway.services.canary.run_once()
    assert not run.ok
    await gateway.settings(canary_interval_minutes=5)  # on, with a run just made: the loop does not run another
    dashboard = await admin.get("/manage", **{"HX-Request": "true", "HX-Target": "dashboard"})
    assert 'class="banner"' in dashboard and "The canary chat turn failed" in dashboard
    assert "Cloudflare challenged this egress" in dashboard and 'href="/manage/diagnose"' in dashboard
    diagnose = await admin.get("/manage/diagnose")
    assert 'data-code="cloudflare_challenge"' in diagnose and "Every 5 min" in diagnose
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/metrics") as resp:
            metrics = await resp.text()
    assert 'grok2api_canary_runs_total{verdict="cloudflare_challenge"} 1' in metrics
    assert "grok2api_canary_last_ok 0" in metrics

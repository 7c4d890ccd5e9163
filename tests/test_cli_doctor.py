"""``grok2api doctor`` as an operator runs it: against the fake grok.com every step passes; against a fake that
challenges, the verdict names Cloudflare and the fix; ``--json`` prints one object; the exit code says whether a
chat turn worked."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from grok2api.cli.doctor import render
from grok2api.diagnose.records import load_reports
from grok2api.diagnose.report import STEP_TITLES, Report, Step
from grok2api.store import make_store
from grok2api.store.base import NewAccount
from grok2api.testing.fake_grok import FakeGrok


async def doctor_cli(data: Path, fake: FakeGrok, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    environ = {
        "GROK2API_DATA_DIR": str(data),
        "STORAGE_MODE": "file",
        "GROK2API_UPSTREAM_URL": fake.base_url,
        "GROK2API_ASSETS_URL": fake.assets_url,
        "GROK2API_UPSTREAM_TRANSPORT": "aiohttp",
        "PATH": "",
        **(env or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grok2api",
        "doctor",
        *args,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    assert "Traceback" not in err.decode(), err.decode()
    return proc.returncode, out.decode()


def marked(text: str) -> list[str]:
    """The step lines of the text output (its wrapped continuations and fixes are indented further)."""
    return [line for line in text.splitlines() if line.startswith("  ") and line[2] != " "]


async def test_every_step_passes_against_the_fake_and_the_result_is_kept(tmp_path: Path, fake: FakeGrok) -> None:
    data = tmp_path / "data"
    code, out = await doctor_cli(data, fake, "--account", "sso=tok-cli-doctor-1")
    assert code == 0, out
    step_lines = marked(out)
    assert len(step_lines) == len(STEP_TITLES)
    assert all(line.split()[0] == "ok" for line in step_lines), out  # no colour codes: stdout is not a terminal
    assert "not used (plain HTTP)" in out and out.rstrip().endswith("a chat turn worked")
    store = make_store("sqlite", "", data)
    await store.open()
    try:
        [report] = (await load_reports(store)).values()  # the Diagnose page shows it
        assert report.ok and report.account.startswith("tok-cl")
    finally:
        await store.close()


async def test_json_with_the_first_active_account(tmp_path: Path, fake: FakeGrok) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = make_store("sqlite", "", data)
    await store.open()
    try:
        await store.add_accounts([NewAccount(token="tok-cli-doctor-2"), NewAccount(token="tok-cli-doctor-3")])
    finally:
        await store.close()
    code, out = await doctor_cli(data, fake, "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] is True
    assert [s["name"] for s in result["steps"]] == list(STEP_TITLES)
    assert all(set(s) == {"name", "ok", "verdict", "fix"} and s["ok"] for s in result["steps"])
    assert [s.token for s in fake.mgw_sessions()] == ["tok-cli-doctor-2"]


async def test_a_challenging_fake_gets_a_verdict_naming_cloudflare_and_the_fix(tmp_path: Path, fake: FakeGrok) -> None:
    fake.require_cf_clearance = "clearance-1"
    code, out = await doctor_cli(tmp_path / "data", fake, "--json", "--account", "tok-cli-doctor-4")
    result = json.loads(out)
    assert code == 1 and result["ok"] is False
    home = next(s for s in result["steps"] if s["name"] == "home_page")
    assert not home["ok"] and "Cloudflare challenged this egress" in home["verdict"]
    assert "cf_clearance" in home["fix"] and "curl_cffi" in home["fix"]
    chat = next(s for s in result["steps"] if s["name"] == "chat_turn")
    assert not chat["ok"]
    # With the clearance the same fake lets everything through.
    code, _ = await doctor_cli(
        tmp_path / "data", fake, "--account", "tok-cli-doctor-4", env={"GROK2API_CF_CLEARANCE": "clearance-1"}
    )
    assert code == 0


def test_the_text_shows_a_repeated_fix_once() -> None:
    fix = "Open grok.com in Chrome 146 and copy cf_clearance."
    steps = [
        Step(name="dns", ok=True, verdict="resolves"),
        Step(name="home_page", ok=False, verdict="challenged", fix=fix, code="cloudflare_challenge"),
        Step(name="modes", ok=False, verdict="challenged", fix=fix, code="cloudflare_challenge"),
        Step(name="chat_turn", ok=False, verdict="not run: x", code="skipped"),
    ]
    text = render([Report(egress="default", transport="aiohttp, direct", account="", at=0.0, steps=steps)])
    assert text.count(fix) == 1 and "fix: the same as above" in text
    assert [line.split()[0] for line in marked(text)] == [
        "ok",
        "FAIL",
        "FAIL",
        "--",
    ]
    assert text.endswith("no chat turn worked: see the first failed step and its fix")
    assert "\033[" in render([Report(egress="d", transport="t", account="", at=0.0, steps=steps)], color=True)

"""``grok2api accounts`` works on the same store as a running gateway, which notices within a second."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from grok2api.store.base import AccountPatch, ModeQuota
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway


async def _cli(data: Path, *args: str) -> str:
    env = {"GROK2API_DATA_DIR": str(data), "STORAGE_MODE": "file", "PATH": ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grok2api",
        "accounts",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_cli_changes_reach_a_running_gateway(tmp_path: Path, fake: FakeGrok) -> None:
    data = tmp_path / "data"
    gw = LiveGateway(data, fake.base_url, fake.assets_url)
    await gw.start()
    try:
        assert "added 2, updated 0" in await _cli(data, "add", "tok-cli-1", "sso=tok-cli-2")
        start = time.monotonic()
        while len(gw.services.pool.accounts()) < 2 and time.monotonic() - start < 5:
            await asyncio.sleep(0.05)
        assert {a.token for a in gw.services.pool.accounts()} == {"tok-cli-1", "tok-cli-2"}
        assert time.monotonic() - start < 2.5

        # History survives a re-add; the tier changes.
        await gw.services.store.update_account(
            "tok-cli-1", AccountPatch(note="keep me", quotas={"fast": ModeQuota(remaining=42)})
        )
        assert "added 0, updated 1" in await _cli(data, "add", "--super", "tok-cli-1")
        acc = await gw.services.store.get_account("tok-cli-1")
        assert acc is not None and acc.note == "keep me" and acc.remaining == 42 and acc.tier == "super"

        rows = json.loads(await _cli(data, "list", "--json"))
        assert [r["type"] for r in sorted(rows, key=lambda r: r["token"])] == ["super", "basic"]
        assert "removed 1" in await _cli(data, "remove", "tok-cli-2")
        start = time.monotonic()
        while len(gw.services.pool.accounts()) != 1 and time.monotonic() - start < 5:
            await asyncio.sleep(0.05)
        assert [a.token for a in gw.services.pool.accounts()] == ["tok-cli-1"]
        listing = await _cli(data, "list")
        assert "1 account(s)" in listing and "tok-cli-2" not in listing
    finally:
        await gw.stop()


async def test_cli_refresh_checks_quota_live(tmp_path: Path, fake: FakeGrok) -> None:
    data = tmp_path / "data"
    fake.add_account("tok-live", quota=33)
    env_data = data
    await _cli(env_data, "add", "tok-live", "invalid-cli")
    env = {
        "GROK2API_DATA_DIR": str(data),
        "STORAGE_MODE": "file",
        "PATH": "",
        "GROK2API_UPSTREAM_URL": fake.base_url,
        "GROK2API_ASSETS_URL": fake.assets_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grok2api",
        "accounts",
        "refresh",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "basic tier; queries left: fast 33 of 33, auto 20 of 20, expert 0 of 0, heavy 0 of 0" in text
    assert "invalid credentials" in text
    rows = {r["token"]: r for r in json.loads(await _cli(data, "list", "--json"))}
    assert rows["tok-live"]["remaining"] == 33
    assert rows["invalid-cli"]["status"] == "invalid"


async def test_cli_add_takes_a_tier(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert "added 2, updated 0" in await _cli(data, "add", "--tier", "heavy", "tok-h1", "tok-h2")
    assert "added 1, updated 0" in await _cli(data, "add", "--super", "tok-s")  # the older spelling of --tier super
    assert "added 1, updated 1" in await _cli(data, "add", "tok-b", "tok-h2")  # basic by default
    rows = json.loads(await _cli(data, "list", "--json"))
    assert {r["token"]: r["type"] for r in rows} == {
        "tok-h1": "heavy",
        "tok-h2": "basic",
        "tok-s": "super",
        "tok-b": "basic",
    }

"""Taking over the reference gateway's data/token.json and data/setting.toml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from grok2api.compat.reference_import import parse_settings_toml, parse_tokens_text
from grok2api.passwords import ADMIN_HASH_KEY, ADMIN_USER_KEY, verify_password
from grok2api.store.base import AccountState
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

TOKEN_JSON = {
    "ssoNormal": {
        "eyJ.normal.one": {
            "createdTime": 1761696000000,
            "remainingQueries": 12,
            "heavyremainingQueries": -1,
            "status": "active",
            "failedCount": 0,
            "tags": ["team-a", " "],
            "note": "first",
        },
        "eyJ.normal.dead": {
            "createdTime": 1761696000000,
            "remainingQueries": -1,
            "status": "expired",
            "tags": [],
            "note": "",
        },
    },
    "ssoSuper": {"eyJ.super.one": {"createdTime": 1761696000000, "status": "active", "tags": ["vip"], "note": "s"}},
}
SETTING_TOML = """
[global]
base_url = "https://gw.example"
image_mode = "base64"
admin_username = "root"
admin_password = "hunter2"
log_level = "DEBUG"

[grok]
api_key = "sk-old"
filtered_tags = "xaiartifact,grok:render"
show_thinking = false
stream_chunk_timeout = 90
unknown_key = 1
"""


def test_parse_token_json_keeps_tags_notes_and_status() -> None:
    accounts = {a.token: a for a in parse_tokens_text(json.dumps(TOKEN_JSON))}
    assert set(accounts) == {"eyJ.normal.one", "eyJ.normal.dead", "eyJ.super.one"}
    assert accounts["eyJ.normal.one"].tier == "basic" and accounts["eyJ.normal.one"].tags == ["team-a"]
    assert accounts["eyJ.normal.one"].note == "first" and accounts["eyJ.normal.one"].created_at == 1761696000
    assert accounts["eyJ.normal.dead"].state == AccountState.INVALID
    assert accounts["eyJ.super.one"].tier == "super"


def test_parse_plain_lines_and_cookies() -> None:
    text = "tok-1\n\nsso=tok-2; other=x\n# comment\nsso-rw=tok-3;sso=tok-3\n"
    assert [a.token for a in parse_tokens_text(text)] == ["tok-1", "tok-2", "tok-3"]


def test_settings_toml_is_mapped_and_password_rehashed() -> None:
    values = parse_settings_toml(SETTING_TOML)
    assert values["base_url"] == "https://gw.example" and values["image_mode"] == "base64"
    assert values["show_thinking"] is False and values["stream_chunk_timeout"] == 90
    assert "unknown_key" not in values and "admin_password" not in values
    assert values[ADMIN_USER_KEY] == "root"
    assert "hunter2" not in json.dumps(values)
    assert verify_password("hunter2", values[ADMIN_HASH_KEY])


async def test_first_start_imports_reference_files(tmp_path: Path, fake: FakeGrok) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "token.json").write_text(json.dumps(TOKEN_JSON))
    (data / "setting.toml").write_text(SETTING_TOML)
    gw = LiveGateway(data, fake.base_url, fake.assets_url)
    await gw.start()
    try:
        accounts = {a.token: a for a in await gw.services.store.list_accounts()}
        assert set(accounts) == {"eyJ.normal.one", "eyJ.normal.dead", "eyJ.super.one"}
        assert accounts["eyJ.normal.dead"].state == AccountState.INVALID
        assert gw.services.settings.image_mode == "base64" and gw.services.settings.api_key == "sk-old"
    finally:
        await gw.stop()


def test_cli_import_and_list(tmp_path: Path) -> None:
    (tmp_path / "token.json").write_text(json.dumps(TOKEN_JSON))
    (tmp_path / "setting.toml").write_text(SETTING_TOML)
    env = {"GROK2API_DATA_DIR": str(tmp_path / "data"), "PATH": "", "STORAGE_MODE": "file"}
    run = [sys.executable, "-m", "grok2api", "accounts"]
    out = subprocess.run(
        [*run, "import", str(tmp_path / "token.json"), "--settings", str(tmp_path / "setting.toml")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "added 3" in out
    again = subprocess.run(
        [*run, "import", str(tmp_path / "token.json")], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "added 0, updated 3" in again
    listed = json.loads(
        subprocess.run([*run, "list", "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert {row["token"] for row in listed} == {"eyJ.normal.one", "eyJ.normal.dead", "eyJ.super.one"}
    row = next(r for r in listed if r["token"] == "eyJ.super.one")
    assert row["type"] == "super" and row["status"] == "active" and row["remaining"] is None
    assert set(row) >= {"token", "type", "status", "remaining", "heavy_remaining", "last_failure"}


def test_malformed_records_do_not_crash_the_import() -> None:
    doc = {
        "ssoNormal": {
            "tok-x": {"tags": 5, "createdTime": 1e300, "note": None},
            "tok-y": {"tags": ["ok", 7], "createdTime": float("inf")},
        }
    }
    accounts = {a.token: a for a in parse_tokens_text(json.dumps(doc, allow_nan=True))}
    assert accounts["tok-x"].tags == [] and accounts["tok-x"].created_at is None and accounts["tok-x"].note == ""
    assert accounts["tok-y"].tags == ["ok", "7"] and accounts["tok-y"].created_at is None

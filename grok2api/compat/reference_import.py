"""Read the reference gateway's ``data/token.json`` and ``data/setting.toml``.

token.json: ``{"ssoNormal": {jwt: record}, "ssoSuper": {jwt: record}}`` (older files use ``sso``).
Tags, notes and status are kept; quota is left unknown (re-learned from grok.com). The admin
password from setting.toml is re-hashed with scrypt and never stored in clear.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from ..grok.headers import normalize_token
from ..passwords import ADMIN_HASH_KEY, ADMIN_USER_KEY, hash_password
from ..settings import SETTING_NAMES
from ..store.base import AccountState, NewAccount, Tier

_POOLS = {"ssoNormal": Tier.BASIC, "sso": Tier.BASIC, "ssoSuper": Tier.SUPER}


_LATEST_MS = 4_102_444_800_000  # 2100-01-01: a later createdTime is garbage


def _created_at(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value / 1000 if 0 < value < _LATEST_MS else None  # also rejects inf and nan


def _record(token: str, tier: str, rec: dict[str, Any]) -> NewAccount:
    status = str(rec.get("status") or "active")
    tags = rec.get("tags")
    acc = NewAccount(
        token=normalize_token(token),
        tier=tier,
        tags=[str(t).strip() for t in tags if str(t).strip()] if isinstance(tags, list) else [],
        note=str(rec.get("note") or ""),
        created_at=_created_at(rec.get("createdTime")),
    )
    if status == "expired":
        acc.state = AccountState.INVALID
        acc.state_reason = "imported as expired from the reference gateway"
    return acc


def load_json(text: str) -> Any:
    """``json.loads``, which takes the NaN and Infinity the reference's own json may have written, but refusing a
    lone surrogate escape (``"\\ud800"``): no database or page can hold that string."""
    data = json.loads(text)
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise json.JSONDecodeError("a lone surrogate escape (such as \\ud800) is not text", text, 0) from None
    return data


def parse_tokens_text(text: str, tier: str = Tier.BASIC) -> list[NewAccount]:
    """A token.json document, or plain text with one token (or sso= cookie) per line."""
    stripped = text.strip()
    if stripped.startswith("{"):
        data = load_json(stripped)
        out: list[NewAccount] = []
        for pool, pool_tier in _POOLS.items():
            records = data.get(pool)
            if isinstance(records, dict):
                out += [
                    _record(str(tok), pool_tier, rec if isinstance(rec, dict) else {}) for tok, rec in records.items()
                ]
        return [a for a in out if a.token]
    tokens = [normalize_token(line) for line in stripped.splitlines() if line.strip() and not line.startswith("#")]
    return [NewAccount(token=t, tier=tier) for t in tokens if t]


_SECTION_KEYS = {"global", "grok"}


def parse_settings_toml(text: str) -> dict[str, Any]:
    """Runtime settings from setting.toml (unknown keys dropped), plus the hashed admin login."""
    data = tomllib.loads(text)
    out: dict[str, Any] = {}
    for section in _SECTION_KEYS:
        values = data.get(section)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if key in SETTING_NAMES and value != "":
                out[key] = value
        if section == "global":
            if values.get("admin_username"):
                out[ADMIN_USER_KEY] = str(values["admin_username"])
            if values.get("admin_password"):
                out[ADMIN_HASH_KEY] = hash_password(str(values["admin_password"]))
    return out


def read_reference_dir(data_dir: Path) -> tuple[list[NewAccount], dict[str, Any]]:
    tokens_file, settings_file = data_dir / "token.json", data_dir / "setting.toml"
    accounts = parse_tokens_text(tokens_file.read_text("utf-8")) if tokens_file.exists() else []
    settings = parse_settings_toml(settings_file.read_text("utf-8")) if settings_file.exists() else {}
    return accounts, settings

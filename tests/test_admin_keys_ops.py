from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from grok2api.admin.keys_ops import KeyFormError, create, parse_form, revoke, status, usage_by_key
from grok2api.client_keys import hash_key
from grok2api.config import BootConfig
from grok2api.errors import AuthError
from grok2api.services import Services
from grok2api.store.base import ClientKey, Store, UsageRow

NOW = 1_800_000_000.0


def test_parse_form_validates_every_field() -> None:
    with pytest.raises(KeyFormError) as info:
        parse_form({"name": " ", "rpm": "-3", "expires": "31/12/2030"}, ["grok-3-fast", "gpt-4"], now=NOW)
    assert set(info.value.errors) == {"name", "rpm", "expires", "models"}
    with pytest.raises(KeyFormError) as info:
        parse_form({"name": "x", "expires": "2020-01-01"}, [], now=NOW)
    assert "future" in info.value.errors["expires"]
    req = parse_form(
        {"name": " bot ", "rpm": "", "expires": "2030-01-31"}, ["grok-4-fast", "grok-3-fast", "grok-3-fast"], now=NOW
    )
    assert (req.name, req.models, req.rpm) == ("bot", ["grok-3-fast", "grok-4-fast"], 0)
    assert req.expires_at == datetime(2030, 1, 31, tzinfo=UTC).timestamp()


async def test_create_stores_only_a_hash_and_applies_at_once(tmp_path: Path, store: Store) -> None:
    svc = Services(BootConfig(data_dir=tmp_path), store=store)
    key, secret = await create(svc, parse_form({"name": "bot", "rpm": "2"}, []))
    stored = (await store.list_client_keys())[0]
    assert stored.key_hash == hash_key(secret) and secret not in repr(stored)
    assert stored.prefix == secret[:12] and key.id == stored.id
    assert svc.keys.authenticate(f"Bearer {secret}", "") is not None
    assert await revoke(svc, key.id)
    with pytest.raises(AuthError):
        svc.keys.authenticate(f"Bearer {secret}", "")
    assert not await revoke(svc, "no-such-key")


def test_usage_and_status() -> None:
    rows = [
        UsageRow(hour=0, model="m", outcome="ok", key_id="a", count=3),
        UsageRow(hour=3600, model="n", outcome="error", key_id="a", count=1),
        UsageRow(hour=0, model="m", outcome="ok", key_id="", count=7),
    ]
    assert usage_by_key(rows) == {"a": (3, 1)}
    key = ClientKey(id="k", name="n", key_hash="h", prefix="p")
    assert status(key) == "active"
    key.expires_at = NOW
    assert status(key, now=NOW + 1) == "expired"
    key.revoked = True
    assert status(key, now=0) == "revoked"

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from grok2api.admin.keys_ops import (
    KeyFormError,
    create,
    parse_api,
    parse_expiry,
    parse_form,
    revoke,
    status,
    usage_by_key,
)
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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (1_900_000_000, 1_900_000_000.0),
        (1_900_000_000.5, 1_900_000_000.5),
        ("1900000000", 1_900_000_000.0),
        ("2030-01-31", datetime(2030, 1, 31, tzinfo=UTC).timestamp()),
        ("2030-01-31T12:30:00", datetime(2030, 1, 31, 12, 30, tzinfo=UTC).timestamp()),  # no offset: UTC
        ("2030-01-31T12:30:00Z", datetime(2030, 1, 31, 12, 30, tzinfo=UTC).timestamp()),
        ("2030-01-31T14:30:00+02:00", datetime(2030, 1, 31, 12, 30, tzinfo=UTC).timestamp()),
    ],
)
def test_parse_expiry_takes_unix_seconds_or_iso_8601(value: object, expected: float | None) -> None:
    assert parse_expiry(value) == expected


@pytest.mark.parametrize("value", [True, "soon", "31/12/2030", "nan", "inf", -1, 0, 1e300, [2030], {"at": 1}])
def test_parse_expiry_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError):
        parse_expiry(value)


def test_parse_api_checks_what_the_form_checks() -> None:
    with pytest.raises(KeyFormError) as info:
        parse_api({"name": "", "models": ["gpt-4"], "rpm": 100_001, "expires_at": NOW - 1}, now=NOW)
    assert set(info.value.errors) == {"name", "models", "rpm", "expires_at"}
    req = parse_api({"name": " bot ", "models": ["grok-4-fast", "grok-3-fast", "grok-3-fast"], "rpm": 5}, now=NOW)
    assert (req.name, req.models, req.rpm, req.expires_at) == ("bot", ["grok-3-fast", "grok-4-fast"], 5, None)
    assert parse_api({"name": "x", "models": None, "rpm": None}, now=NOW).models == []

"""Services: settings updates (env locks, validation), picking up other instances' changes, first-start import."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import openai
import pytest

from grok2api.config import BootConfig
from grok2api.passwords import ADMIN_HASH_KEY, verify_password
from grok2api.services import Services
from grok2api.settings import SettingsError
from grok2api.store.base import NewAccount
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

MakeServices = Callable[..., Awaitable[Services]]

TOKEN_JSON = {
    "ssoNormal": {"ref-basic-1": {"status": "active", "tags": ["ref"]}, "ref-basic-2": {}},
    "ssoSuper": {"ref-super-1": {"note": "vip"}},
}
SETTING_TOML = """
[global]
image_mode = "base64"
admin_password = "from-reference"

[grok]
max_attempts = 7
"""


@pytest.fixture
async def make_services(tmp_path: Path) -> AsyncIterator[MakeServices]:
    """``await make_services(env={...})`` starts a Services on the shared SQLite file in tmp_path/data."""
    started: list[Services] = []

    async def make(env: dict[str, str] | None = None, *, start: bool = True) -> Services:
        svc = Services(BootConfig(data_dir=tmp_path / "data", environ=env or {}))
        if start:
            await svc.start()
            started.append(svc)
        return svc

    yield make
    for svc in reversed(started):
        await svc.stop()


async def test_update_settings_saves_coerced_values(make_services: MakeServices) -> None:
    svc = await make_services()
    before = (await svc.store.versions()).settings
    settings = await svc.update_settings({"max_attempts": "5", "show_thinking": "false", "proxy_url": "socks5://h:1"})
    assert settings is svc.settings
    assert (settings.max_attempts, settings.show_thinking) == (5, False)
    assert settings.proxy_url == "socks5h://h:1"  # normalised on the way in
    stored = await svc.store.load_settings()
    assert stored["max_attempts"] == 5 and stored["show_thinking"] is False
    assert (await svc.store.versions()).settings > before


async def test_env_locked_settings_are_refused_naming_the_variable(make_services: MakeServices) -> None:
    svc = await make_services({"GROK2API_MAX_ATTEMPTS": "2", "GROK2API_PROXY_URL": "http://127.0.0.1:3128"})
    assert svc.settings.max_attempts == 2
    with pytest.raises(SettingsError) as exc:
        await svc.update_settings({"max_attempts": 4, "proxy_url": "", "image_mode": "base64"})
    assert set(exc.value.errors) == {"max_attempts", "proxy_url"}
    assert "GROK2API_MAX_ATTEMPTS" in exc.value.errors["max_attempts"]
    assert "GROK2API_PROXY_URL" in exc.value.errors["proxy_url"]
    assert "GROK2API_MAX_ATTEMPTS" in str(exc.value)
    # Nothing was saved, not even the unlocked image_mode.
    assert await svc.store.load_settings() == {}
    assert svc.settings.image_mode == "url" and svc.settings.max_attempts == 2
    # Unlocked settings alone are fine.
    await svc.update_settings({"image_mode": "base64"})
    # mypy keeps the narrowing to "url" from above across the update, so it calls this comparison impossible.
    assert svc.settings.image_mode == "base64"  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(
    ("changes", "bad"),
    [
        ({"max_attempts": 0}, {"max_attempts"}),
        ({"max_attempts": "many"}, {"max_attempts"}),
        ({"image_mode": "png"}, {"image_mode"}),
        ({"default_cooldown_seconds": -1}, {"default_cooldown_seconds"}),
        ({"no_such_setting": 1}, {"no_such_setting"}),
        ({"upstream_url": "ftp://grok.com"}, {"upstream_url"}),
        ({"x_statsig_id": ""}, {"x_statsig_id"}),
        ({"max_attempts": 11, "log_level": "LOUD", "show_thinking": False}, {"max_attempts", "log_level"}),
    ],
)
async def test_invalid_values_are_rejected_per_field_and_nothing_saved(
    make_services: MakeServices, changes: dict[str, object], bad: set[str]
) -> None:
    svc = await make_services()
    await svc.update_settings({"stream_chunk_timeout": 45})
    before_settings, before_version = svc.settings, (await svc.store.versions()).settings
    with pytest.raises(SettingsError) as exc:
        await svc.update_settings(changes)
    assert set(exc.value.errors) == bad
    assert all(exc.value.errors.values())
    assert await svc.store.load_settings() == {"stream_chunk_timeout": 45}
    assert (await svc.store.versions()).settings == before_version
    assert svc.settings == before_settings


async def test_reload_picks_up_a_setting_saved_by_another_instance(make_services: MakeServices) -> None:
    first = await make_services({"GROK2API_DEFAULT_COOLDOWN_SECONDS": "42"})
    second = await make_services()
    await second.update_settings({"max_attempts": 6, "default_cooldown_seconds": 900})
    assert first.settings.max_attempts == 3  # not seen until the next reload
    await first.reload()
    assert first.settings.max_attempts == 6
    assert first.settings.default_cooldown_seconds == 42  # its environment still wins
    assert second.settings.default_cooldown_seconds == 900


async def test_reload_picks_up_accounts_added_by_another_instance(make_services: MakeServices) -> None:
    first = await make_services()
    second = await make_services()
    await second.store.add_accounts([NewAccount(token="tok-elsewhere")])
    assert [a.token for a in first.pool.accounts()] == []
    await first.reload()
    assert [a.token for a in first.pool.accounts()] == ["tok-elsewhere"]


def _write_reference(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "token.json").write_text(json.dumps(TOKEN_JSON), "utf-8")
    (data_dir / "setting.toml").write_text(SETTING_TOML, "utf-8")


async def test_reference_files_are_imported_into_an_empty_store(make_services: MakeServices, tmp_path: Path) -> None:
    _write_reference(tmp_path / "data")
    svc = await make_services()
    accounts = {a.token: a for a in await svc.store.list_accounts()}
    assert set(accounts) == {"ref-basic-1", "ref-basic-2", "ref-super-1"}
    assert accounts["ref-super-1"].tier == "super" and accounts["ref-basic-1"].tags == ["ref"]
    assert {a.token for a in svc.pool.accounts()} == set(accounts)  # loaded at start
    stored = await svc.store.load_settings()
    assert stored["image_mode"] == "base64" and stored["max_attempts"] == 7
    assert verify_password("from-reference", stored[ADMIN_HASH_KEY])
    assert (svc.settings.image_mode, svc.settings.max_attempts) == ("base64", 7)


async def test_reference_files_are_not_imported_into_a_store_with_accounts(
    make_services: MakeServices, tmp_path: Path
) -> None:
    svc = await make_services(start=False)
    await svc.store.open()
    try:
        await svc.store.add_accounts([NewAccount(token="already-here")])
        _write_reference(tmp_path / "data")
        await svc.import_reference_files()
        assert [a.token for a in await svc.store.list_accounts()] == ["already-here"]
        assert await svc.store.load_settings() == {}
    finally:
        await svc.store.close()


async def test_reference_settings_do_not_overwrite_stored_settings(make_services: MakeServices, tmp_path: Path) -> None:
    svc = await make_services(start=False)
    await svc.store.open()
    try:
        await svc.store.save_settings({"max_attempts": 2})
        _write_reference(tmp_path / "data")
        await svc.import_reference_files()
        assert len(await svc.store.list_accounts()) == 3  # no accounts yet: those are taken over
        assert await svc.store.load_settings() == {"max_attempts": 2}
        await svc.import_reference_files()  # a second start imports nothing more
        assert len(await svc.store.list_accounts()) == 3
    finally:
        await svc.store.close()


async def test_start_without_reference_files_leaves_the_store_empty(make_services: MakeServices) -> None:
    svc = await make_services()
    assert await svc.store.list_accounts() == []
    assert await svc.store.load_settings() == {}


async def test_a_mode_grok_com_adds_is_listed_and_usable_within_one_poll(
    gateway: LiveGateway, fake: FakeGrok, client: openai.AsyncOpenAI
) -> None:
    await gateway.add_accounts("tok1")
    fake.add_mode("grok-420-computer-use-sa", title="Grok 4.3 beta")
    assert "grok-420-computer-use-sa" not in {m.id async for m in client.models.list()}
    assert await gateway.services.refresh_modes()  # one poll
    listed = {m.id: m async for m in client.models.list()}
    assert (listed["grok-420-computer-use-sa"].model_extra or {})["mode"] == "grok-420-computer-use-sa"
    answer = await client.chat.completions.create(
        model="grok-420-computer-use-sa", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    assert fake.mgw_sessions("tok1")[-1].mode == "grok-420-computer-use-sa"

    fake.set_mode_available("heavy", False)  # grok.com withdraws a mode: it is hidden, and refused
    assert await gateway.services.refresh_modes()
    ids = {m.id async for m in client.models.list()}
    assert "grok-heavy" not in ids and "grok-4-heavy" not in ids and "grok-fast" in ids
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="grok-heavy", messages=[{"role": "user", "content": "hi"}])


async def test_modes_are_not_polled_without_an_account(make_services: MakeServices) -> None:
    svc = await make_services()
    assert not await svc.refresh_modes()

"""Everything one process needs, built in order and torn down in reverse: store → settings →
HTTP sessions → pool → gateway → media → video runner → background watchers."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from .after_response import drain
from .client_keys import ClientKeys
from .config import BootConfig
from .diagnose.canary import Canary
from .egresses import Egresses
from .gateway import Gateway
from .grok.browser import SelectedTransport
from .grok.catalog import TIER_RANK, Catalog, ModeEntry
from .grok.client import GrokClient
from .media.service import MediaService
from .metrics import Metrics
from .pool import Pool
from .quota import QuotaService
from .settings import RuntimeSettings, build, env_overrides, validate_update
from .store import make_store
from .store.base import AccountState, Store, StoreUnavailable
from .store.guard import StoreHealth, guard
from .store.journal import Journal
from .traffic import Traffic
from .videos.generate import VideoContext
from .videos.runner import VideoRunner

log = logging.getLogger("grok2api")

WATCH_INTERVAL = 1.0
FLUSH_INTERVAL = 10.0
REVIVE_INTERVAL = 5.0
KEYS_INTERVAL = 5.0
EGRESS_INTERVAL = 2.0  # how soon a challenge or a clearance seen by another worker or replica applies here
PURGE_INTERVAL = 600.0  # expired stored responses are removed this often
JOURNAL_INTERVAL = 1.0
MODES_RETRY = 30.0  # seconds before asking for the modes again after a failure or with no account


class Services:
    def __init__(self, boot: BootConfig, store: Store | None = None) -> None:
        self.boot = boot
        # Every store call is bounded by the store timeout; an unreachable store is a 503, not a hang.
        self.store_health = StoreHealth()
        raw = store or make_store(boot.storage_mode, boot.database_url, boot.data_dir, timeout=boot.store_timeout)
        self.store: Store = guard(raw, self.store_health, boot.store_timeout)
        self.journal = Journal()
        self.traffic = Traffic()
        self.overrides = env_overrides(boot.environ)
        self.settings: RuntimeSettings = build({}, self.overrides)
        self.catalog = Catalog()
        self.http = SelectedTransport(lambda: self.settings)
        self.egresses = Egresses(self.store, lambda: self.settings, self.http)
        self.client = GrokClient(self.http, router=self.egresses.transport_for)  # each account via its egress
        self.quota = QuotaService(self.client, self.store, lambda: self.settings)
        self.pool = Pool(self.store, lambda: self.settings, reconcile=self.quota.reconcile, journal=self.journal)
        self.metrics = Metrics()
        self.gateway = Gateway(self.pool, self.client, self.metrics.upstream_failure)
        self.media = MediaService(boot.data_dir, self.store, self.client)
        self.videos = VideoRunner(VideoContext(self.store, self.pool, self.client, self.media, lambda: self.settings))
        self.keys = ClientKeys(self.store)
        self.canary = Canary(self.store, lambda: self.settings, self.pool.accounts, egress_of=self.egresses.for_token)
        self.started = time.time()
        self._settings_version = -1
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.boot.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.open()
        self.journal.load(self.journal_dir)
        await self.import_reference_files()
        await self.reload(force=True)
        await self.egresses.load()
        self._tasks = [
            asyncio.create_task(self._every(WATCH_INTERVAL, self.reload), name="watch-store"),
            asyncio.create_task(self._every(FLUSH_INTERVAL, self._flush), name="flush-metrics"),
            asyncio.create_task(self._every(REVIVE_INTERVAL, self.revive_due), name="revive-accounts"),
            asyncio.create_task(self._every(KEYS_INTERVAL, self.load_keys), name="load-keys"),
            asyncio.create_task(self._every(EGRESS_INTERVAL, self.egresses.load), name="load-egresses"),
            asyncio.create_task(self._every(JOURNAL_INTERVAL, self.replay_journal), name="replay-journal"),
            asyncio.create_task(self._modes_loop(), name="refresh-modes"),
            asyncio.create_task(self.canary.loop(), name="canary"),
            asyncio.create_task(self._every(PURGE_INTERVAL, self.purge_responses), name="purge-responses"),
        ]
        self.videos.start()

    async def import_reference_files(self) -> None:
        """On first start with an empty store, take over the reference gateway's token.json/setting.toml."""
        from .compat.reference_import import read_reference_dir

        if await self.store.list_accounts():
            return
        accounts, values = read_reference_dir(self.boot.data_dir)
        if accounts:
            result = await self.store.add_accounts(accounts)
            log.info("imported %d account(s) from the reference token.json", result.added)
        if values and not await self.store.load_settings():
            await self.store.save_settings(values)
            log.info("imported %d setting(s) from the reference setting.toml", len(values))

    async def stop(self) -> None:
        await drain()  # settlements of the last responses, before the store closes
        await self.videos.stop()  # the jobs it was making resume elsewhere once their leases run out
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        with suppress(Exception):
            await self.metrics.flush(self.store)
        with suppress(Exception):
            await self.egresses.flush()  # Cloudflare cookies grok.com rotated in the last moment
        await self.pool.close()
        await self.replay_journal()
        try:
            self.journal.save(self.journal_dir)  # what the store still did not take waits for the next start
        except OSError as exc:
            log.error("could not save %d journaled settlement(s): %s", len(self.journal), exc)
        await self.media.close()
        await self.client.spares.close()
        await self.http.close()
        await self.store.close()

    @property
    def journal_dir(self) -> Path:
        return self.boot.data_dir / "journal"

    async def replay_journal(self) -> None:
        if len(self.journal):
            await self.journal.replay(self.store)

    async def reload(self, force: bool = False) -> None:
        """Pick up changes made by other workers, replicas or the CLI (one cheap query)."""
        versions = await self.store.versions()
        if force or versions.settings != self._settings_version:
            stored = await self.store.load_settings()
            self.settings = build(stored, self.overrides)
            logging.getLogger("grok2api").setLevel(self.settings.log_level)
            self._settings_version = versions.settings
        await self.pool.refresh(versions.accounts, force=force)
        if force:
            await self.load_keys()

    async def update_settings(self, changes: dict[str, Any]) -> RuntimeSettings:
        """Validate and store a partial update (raises SettingsError); locked env values are refused."""
        locked = sorted(set(changes) & set(self.overrides))
        if locked:
            from .settings import SettingsError

            raise SettingsError({k: "set by the environment (GROK2API_" + k.upper() + ")" for k in locked})
        values = validate_update(self.settings, changes)
        await self.store.save_settings(values)
        await self.reload(force=True)
        return self.settings

    async def load_keys(self) -> None:
        self.keys.load(await self.store.list_client_keys())

    async def revive_due(self) -> int:
        """Bring back cooling accounts whose window has reset (see QuotaService.revive_due)."""
        return await self.quota.revive_due(self.pool.accounts())

    async def purge_responses(self) -> int:
        """Remove the stored responses that have expired (a read already ignores them)."""
        return await self.store.purge_responses(time.time())

    async def refresh_modes(self) -> bool:
        """Read grok.com's modes with one active account, so a new mode is usable within one poll and a
        withdrawn one disappears; False when no account could ask. grok.com marks the modes above an
        account's tier unavailable to it, so the highest-tier account asks."""
        active = [a for a in self.pool.accounts() if a.state == AccountState.ACTIVE]
        account = max(active, key=lambda a: TIER_RANK.get(a.tier, 0), default=None)
        if account is None:
            return False
        offered = await self.client.modes(account.token, self.settings)
        new = self.catalog.update(ModeEntry(m.id, m.title, m.description, m.available) for m in offered)
        if new:
            log.info("grok.com offers new modes: %s", ", ".join(new))
        return True

    async def _modes_loop(self) -> None:
        while True:
            try:
                asked = await self.refresh_modes()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the last known list; ask again soon
                log.warning("reading grok.com's modes failed: %s", exc)
                asked = False
            await asyncio.sleep(self.settings.modes_refresh_seconds if asked else MODES_RETRY)

    async def _flush(self) -> None:
        await self.metrics.flush(self.store)

    async def _every(self, seconds: float, job: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:
                pass  # the outage was logged once when it began
            except Exception as exc:  # a background job must keep running after a store hiccup
                log.warning("background job %s failed: %s", getattr(job, "__name__", job), exc)

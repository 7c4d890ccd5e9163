"""Settlements the store could not take when they happened, kept until it can.

An answer the client already has must not be cut or turned into an error because its bookkeeping failed: when
the store is unreachable, the settlement of the lease is written here instead and applied, in order, once the
store answers again. The journal lives in memory and is bounded (the oldest entries go first when it is full); on
shutdown what is left is saved under the data dir and picked up by the next start (any worker may take a file:
the rename that claims it is atomic).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import deque
from pathlib import Path

import msgspec

from .base import Settlement, Store, StoreUnavailable

log = logging.getLogger("grok2api.store")

DEFAULT_LIMIT = 10_000


class Entry(msgspec.Struct, array_like=True):
    account_id: int
    settlement: Settlement


_FILE = msgspec.json.Decoder(list[Entry])
_ENCODER = msgspec.json.Encoder()


class Journal:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._entries: deque[Entry] = deque()
        self.dropped = 0  # entries pushed out by newer ones while full

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, account_id: int, settlement: Settlement) -> None:
        if len(self._entries) >= self.limit:
            self._entries.popleft()
            self.dropped += 1
            if self.dropped == 1:
                log.warning("the settlement journal is full (%d entries): the oldest are dropped", self.limit)
        self._entries.append(Entry(account_id, settlement))

    async def replay(self, store: Store) -> int:
        """Apply the entries in order until the store fails again; returns how many were applied."""
        applied = 0
        while self._entries:
            entry = self._entries[0]
            try:
                await store.settle(entry.account_id, entry.settlement)
            except StoreUnavailable:
                break
            except Exception:  # not an outage: this entry can never be applied, the others still can
                log.exception("dropping a journaled settlement of account %d", entry.account_id)
            self._entries.popleft()
            applied += 1
        if applied and not self._entries:
            log.info("applied %d journaled settlement(s)", applied)
        return applied

    # -- across restarts -------------------------------------------------------------------------

    def save(self, directory: Path) -> Path | None:
        """Write what is left to a new file in ``directory`` (None when nothing is left)."""
        if not self._entries:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"settlements-{uuid.uuid4().hex}.json"
        partial = path.with_suffix(".partial")
        partial.write_bytes(_ENCODER.encode(list(self._entries)))
        partial.replace(path)  # a reader never sees half a file
        log.warning("saved %d settlement(s) the store did not take to %s", len(self._entries), path.name)
        self._entries.clear()
        return path

    def load(self, directory: Path) -> int:
        """Take over every saved file in ``directory`` (each by renaming it first, so two workers never both
        load one); returns how many entries were added."""
        if not directory.is_dir():
            return 0
        added = 0
        for path in sorted(directory.glob("settlements-*.json")):
            claimed = path.with_name(f"claimed-{os.getpid()}-{path.name}")
            try:
                path.rename(claimed)
            except FileNotFoundError:  # another worker took it
                continue
            try:
                entries = _FILE.decode(claimed.read_bytes())
            except (OSError, msgspec.DecodeError) as exc:
                log.warning("ignoring the unreadable settlement journal %s: %s", path.name, exc)
                continue
            for entry in entries:
                self.add(entry.account_id, entry.settlement)
            added += len(entries)
            claimed.unlink()
        if added:
            log.info("loaded %d saved settlement(s) to apply", added)
        return added

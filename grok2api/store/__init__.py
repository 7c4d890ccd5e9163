"""Storage backends behind one protocol (see base.Store)."""

from __future__ import annotations

from pathlib import Path

from .base import Store


def make_store(mode: str, database_url: str, data_dir: Path, timeout: float | None = None) -> Store:
    """Build the store for ``STORAGE_MODE``: ``file`` (SQLite in the data dir), ``mysql`` or ``redis``. ``timeout``:
    seconds a connect or an answer of a database server may take before the call fails (None = no limit)."""
    mode = (mode or "file").strip().lower()
    if mode in ("file", "sqlite"):
        from .sql import SqlStore

        url = database_url or f"sqlite+aiosqlite:///{data_dir / 'grok2api.db'}"
        return SqlStore(url, timeout=timeout)
    if mode == "mysql":
        from .sql import SqlStore

        if not database_url:
            raise ValueError("STORAGE_MODE=mysql needs DATABASE_URL=mysql://user:pass@host:3306/db")
        return SqlStore(database_url, timeout=timeout)
    if mode == "redis":
        from .redis import RedisStore

        if not database_url:
            raise ValueError("STORAGE_MODE=redis needs DATABASE_URL=redis://host:6379/0")
        return RedisStore(database_url, timeout=timeout)
    raise ValueError(f"unknown STORAGE_MODE {mode!r}: use file, mysql or redis")

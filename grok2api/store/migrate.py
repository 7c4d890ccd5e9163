"""Alembic upgrades run from inside the application (startup and ``grok2api migrate``)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..resources import resource_dir

log = logging.getLogger("grok2api.store")
MIGRATE_LOCK = "grok2api_migrate"
LOCK_TIMEOUT = 60  # seconds another instance may spend migrating before we give up


def migrations_dir() -> Path:
    """The top-level ``migrations/`` directory: it ships beside the package, not inside it."""
    return resource_dir("migrations", "GROK2API_MIGRATIONS_DIR")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` built in code, so running the app needs no ``alembic.ini``.

    With ``connection``, env.py migrates on it instead of opening its own engine (and skips logging setup).
    """
    cfg = Config()
    # ConfigParser interpolates '%' in option values.
    cfg.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The revision this code's migrations end at (read from the scripts once per process)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def _upgrade(connection: Connection) -> None:
    """Upgrade to head, saying so in one line when there was something to do (``logs.setup_logging`` keeps
    alembic's own INFO lines out)."""
    before = _revision(connection)
    command.upgrade(alembic_config(connection), "head")
    after = _revision(connection)
    if after != before:
        log.info("database schema upgraded from %s to %s", before or "empty", after)


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the schema to the latest revision. Idempotent; safe when several instances start together."""
    mysql = engine.dialect.name in ("mysql", "mariadb")
    async with engine.connect() as conn:
        if mysql:
            # MySQL DDL is not transactional: two instances migrating at once would collide on CREATE TABLE.
            # A named lock serializes them; the second then finds the schema at head and does nothing.
            got = await conn.scalar(
                text("SELECT GET_LOCK(:name, :timeout)"), {"name": MIGRATE_LOCK, "timeout": LOCK_TIMEOUT}
            )
            await conn.commit()
            if got != 1:
                raise RuntimeError(f"could not get the {MIGRATE_LOCK!r} lock within {LOCK_TIMEOUT}s")
        # MySQL ignores primary-key constraint names and the driver logs one warning per table
        # ("Name 'pk_…' ignored"): keep those out of the log while the schema is created.
        driver_log = logging.getLogger("asyncmy")
        level = driver_log.level
        driver_log.setLevel(logging.ERROR)
        try:
            async with conn.begin():
                await conn.run_sync(_upgrade)
        finally:
            driver_log.setLevel(level)
            if mysql:
                await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": MIGRATE_LOCK})
                await conn.commit()

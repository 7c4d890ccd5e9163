"""Boot configuration: read once from the environment, never changed at run time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .resources import resource_dir


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which containers and ``taskset`` narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BootConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = field(default_factory=usable_cpus)
    data_dir: Path = Path("data")
    storage_mode: str = "file"
    database_url: str = ""
    admin_username: str = "admin"
    admin_password: str = ""
    web_dir: Path = field(default_factory=lambda: resource_dir("web", "GROK2API_WEB_DIR"))
    max_body_bytes: int = 32 * 1024 * 1024
    event_loop: str = "auto"  # auto (uvloop when installed), uvloop or asyncio
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BootConfig:
        env = dict(os.environ if environ is None else environ)

        def get(name: str, default: str) -> str:
            return env.get(name, default).strip() or default

        return cls(
            host=get("GROK2API_HOST", cls.host),
            port=int(get("GROK2API_PORT", str(cls.port))),
            workers=max(1, int(get("GROK2API_WORKERS", str(usable_cpus())))),
            data_dir=Path(get("GROK2API_DATA_DIR", "data")),
            storage_mode=get("STORAGE_MODE", "file").lower(),
            database_url=env.get("DATABASE_URL", "").strip(),
            admin_username=get("GROK2API_ADMIN_USERNAME", "admin"),
            admin_password=env.get("GROK2API_ADMIN_PASSWORD", ""),
            web_dir=resource_dir("web", "GROK2API_WEB_DIR", env),
            max_body_bytes=int(get("GROK2API_MAX_BODY_BYTES", str(cls.max_body_bytes))),
            event_loop=get("GROK2API_EVENT_LOOP", cls.event_loop).lower(),
            environ=env,
        )

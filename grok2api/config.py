"""Boot configuration: read once from the environment, never changed at run time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .logs import LOG_FORMATS
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
    log_format: str = "text"  # text | json (one JSON object per line)
    access_log: bool = True  # one line per request, written by the edge (a few hundredths of a ms of CPU each)
    # operations (see the README's Operations section)
    store_timeout: float = 2.0  # seconds a store connect or answer may take before the call fails
    shutdown_grace: float = 30.0  # seconds requests in flight may take to finish after SIGTERM
    header_timeout: float = 10.0  # seconds a connection has to send a whole request head
    body_timeout: float = 30.0  # seconds a request body may go without a byte
    max_connections: int = 1000  # open client connections per worker process
    event_loop: str = "auto"  # auto (uvloop when installed), uvloop or asyncio
    http_server: str = "auto"  # builtin (http1.py: HTTP/1.1 on httptools, the fast extra) when installed, or hypercorn
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BootConfig:
        env = dict(os.environ if environ is None else environ)

        def get(name: str, default: str) -> str:
            return env.get(name, default).strip() or default

        log_format = get("GROK2API_LOG_FORMAT", cls.log_format).lower()
        if log_format not in LOG_FORMATS:
            raise ValueError(f"GROK2API_LOG_FORMAT must be {' or '.join(LOG_FORMATS)}, not {log_format!r}")

        access_log = get("GROK2API_ACCESS_LOG", "on").lower()
        if access_log not in ("on", "off", "1", "0", "true", "false"):
            raise ValueError(f"GROK2API_ACCESS_LOG must be on or off, not {access_log!r}")

        def seconds(name: str, default: float) -> float:
            value = float(get(name, str(default)))
            if not 0 < value <= 86400:
                raise ValueError(f"{name} must be a number of seconds above 0 (and at most a day)")
            return value

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
            log_format=log_format,
            access_log=access_log in ("on", "1", "true"),
            store_timeout=seconds("GROK2API_STORE_TIMEOUT_SECONDS", cls.store_timeout),
            shutdown_grace=seconds("GROK2API_SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace),
            header_timeout=seconds("GROK2API_HEADER_TIMEOUT_SECONDS", cls.header_timeout),
            body_timeout=seconds("GROK2API_BODY_TIMEOUT_SECONDS", cls.body_timeout),
            max_connections=max(1, int(get("GROK2API_MAX_CONNECTIONS", str(cls.max_connections)))),
            event_loop=get("GROK2API_EVENT_LOOP", cls.event_loop).lower(),
            http_server=get("GROK2API_HTTP_SERVER", cls.http_server).lower(),
            environ=env,
        )

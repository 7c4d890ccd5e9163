"""How ``grok2api serve`` runs hypercorn: the event loop (uvloop when installed, the ``fast`` extra) and
the worker processes (``GROK2API_WORKERS``, by default one per usable CPU)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable
from typing import Any

from hypercorn.config import Config

from .config import BootConfig

log = logging.getLogger("grok2api")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
APP_FACTORY = "grok2api.serving:worker_app()"  # what each forked worker imports and calls


def worker_class(choice: str) -> str:
    """hypercorn's worker class for ``GROK2API_EVENT_LOOP``: ``uvloop`` when asked for or (``auto``)
    installed, else ``asyncio``. ValueError for an unknown choice or a uvloop that is not installed."""
    if choice not in EVENT_LOOPS:
        raise ValueError(f"GROK2API_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, not {choice!r}")
    if choice == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is not None:
        return "uvloop"
    if choice == "uvloop":
        raise ValueError("GROK2API_EVENT_LOOP=uvloop, but uvloop is not installed: pip install 'grok2api[fast]'")
    return "asyncio"


def loop_factory(worker: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory of a hypercorn worker class (None: asyncio's own)."""
    if worker != "uvloop":
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def worker_app() -> Any:
    """The app of one forked worker: connections write in batches (``write_batching``)."""
    from . import write_batching
    from .app import create_app

    write_batching.install()
    return create_app()


def hypercorn_config(bind: str, workers: int, worker: str) -> Config:
    config = Config()
    config.bind = [bind]
    config.graceful_timeout = 30
    config.backlog = 2048  # bursts of hundreds of new connections must not overflow the accept queue
    config.accesslog = None
    config.worker_class = worker
    config.workers = workers
    config.application_path = APP_FACTORY
    return config


def serve(boot: BootConfig, bind: str, workers: int) -> None:
    """Serve until SIGINT/SIGTERM: ``workers`` processes forked by hypercorn, or this process alone."""
    from .app import setup_logging

    setup_logging(boot.environ.get("GROK2API_LOG_FILE", ""))
    worker = worker_class(boot.event_loop)
    config = hypercorn_config(bind, workers, worker)
    log.info("serving on %s: %d worker process(es), %s event loop", bind, workers, worker)
    if workers > 1:
        from hypercorn.run import run

        run(config)
        return
    from hypercorn.asyncio import serve as hypercorn_serve

    from . import write_batching
    from .app import create_app

    write_batching.install()
    with asyncio.Runner(loop_factory=loop_factory(worker)) as runner:
        runner.run(hypercorn_serve(create_app(boot), config))  # type: ignore[arg-type]

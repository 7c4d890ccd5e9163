"""The event loop ``grok2api serve`` runs its workers on (``GROK2API_EVENT_LOOP``): uvloop when installed (the
``fast`` extra), else asyncio's own. The workers themselves are ``serve.py``'s."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
from collections.abc import Callable

log = logging.getLogger("grok2api")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def _fast_or_plain(setting: str, choices: tuple[str, ...], choice: str, fast: str, plain: str, module: str) -> str:
    """``fast`` (which needs ``module``, from the ``fast`` extra) when asked for or (``auto``) installed, else
    ``plain``. ValueError for an unknown choice, or ``fast`` asked for but not installed."""
    if choice not in choices:
        raise ValueError(f"{setting} must be one of {', '.join(choices)}, not {choice!r}")
    if choice == plain:
        return plain
    if importlib.util.find_spec(module) is not None:
        return fast
    if choice == fast:
        raise ValueError(f"{setting}={fast}, but {module} is not installed: pip install 'grok2api[fast]'")
    return plain


def worker_class(choice: str) -> str:
    """hypercorn's worker class for ``GROK2API_EVENT_LOOP``: ``uvloop`` when asked for or (``auto``)
    installed, else ``asyncio``. ValueError for an unknown choice or a uvloop that is not installed."""
    return _fast_or_plain("GROK2API_EVENT_LOOP", EVENT_LOOPS, choice, "uvloop", "asyncio", "uvloop")


def loop_factory(worker: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory of a hypercorn worker class (None: asyncio's own); uvloop's is ``uvloop_loop``'s,
    which reads numeric addresses without a thread."""
    if worker != "uvloop":
        return None
    from .uvloop_loop import new_event_loop

    factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop
    return factory


HTTP_SERVERS = ("auto", "hypercorn", "builtin")


def http_server(choice: str, tls: bool = False) -> str:
    """Which server answers plain HTTP for ``GROK2API_HTTP_SERVER``: ``builtin`` (``http1.py``, on httptools) when
    asked for or (``auto``) installed, else ``hypercorn``; TLS is always hypercorn's. ValueError for an unknown
    choice or a ``builtin`` whose httptools is not installed."""
    if tls and choice in HTTP_SERVERS:
        return "hypercorn"
    return _fast_or_plain("GROK2API_HTTP_SERVER", HTTP_SERVERS, choice, "builtin", "hypercorn", "httptools")


YOUNG_THRESHOLD = 20_000  # container allocations between young collections (CPython's default is 700)


def tune_gc() -> None:
    """Garbage collection for a worker that has built its app: what exists now (modules, classes, the app) lives
    as long as the process, so it is frozen out of every later collection; and young collections run after
    ``YOUNG_THRESHOLD`` allocations instead of 700. With the default, each request's short-lived objects set off
    several young collections that promote the objects of the requests still in flight, and the full collections
    that follow walk every long-lived object again (about a quarter of a millisecond of CPU per request)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)

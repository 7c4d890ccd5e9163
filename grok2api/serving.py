"""The event loop ``grok2api serve`` runs its workers on (``GROK2API_EVENT_LOOP``): uvloop when installed (the
``fast`` extra), else asyncio's own. The workers themselves are ``serve.py``'s."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable

log = logging.getLogger("grok2api")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


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

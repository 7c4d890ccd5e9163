"""Spare chat sockets: an account's next turn finds its WebSocket to grok.com already open.

Opening the chat socket costs a TCP connect, a TLS handshake and the upgrade: three round trips to grok.com
before the turn's own ``session.create`` can leave. An account that is chatting (its previous turn began
less than ``keep_for`` seconds ago) gets one more socket opened in the background once its turn's first
answer has been handed on, kept open and silent for at most ``keep_for`` seconds (below the 25 s heartbeat the
clients keep; whether and when grok.com lets a silent socket go is not documented), and its next turn starts
at ``session.create``. A socket stays one turn's
socket, as grok.com's own clients use it; only its opening moves off the critical path.

At most one spare waits per (egress, socket URL, account), so a burst opens as many sockets as it would
without spares, plus at most one per account at its end, closed unused. An account that chats once in a
while gets none. A spare grok.com closed meanwhile is set aside when a turn comes for it (where the transport
can tell without reading) or noticed when the session does not open on it (``stream_mgw``); either way the
turn goes on over a fresh socket, and ``stale`` counts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import NamedTuple

from .transport import WebSocket

log = logging.getLogger("grok2api.grok.spare_sockets")

MAX_SPARES = 256  # sockets waiting or being opened, over all accounts: a bound on what idles at grok.com
_FORGET_AFTER = 1024  # accounts remembered for the recency rule before the old ones are let go


class _Spare(NamedTuple):
    ws: WebSocket
    version: object  # what the socket was opened for (the settings): a spare of other settings is not used
    expiry: asyncio.TimerHandle


class SpareSockets:
    def __init__(self, max_spares: int = MAX_SPARES) -> None:
        self.max_spares = max_spares
        self._spares: dict[Hashable, _Spare] = {}
        self._opening: dict[Hashable, asyncio.Task[None]] = {}
        self._last_turn: dict[Hashable, float] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.closed = False
        # What happened to the spares, for the metrics: taken by a turn, closed unused, found closed by grok.com.
        self.opened = self.taken = self.expired = self.stale = self.failed = 0

    def metric_lines(self) -> list[str]:
        """The counts in the Prometheus text format (this process)."""
        counts = {"opened": self.opened, "taken": self.taken, "expired": self.expired}
        counts |= {"stale": self.stale, "failed": self.failed}
        return [
            "# HELP grok2api_spare_sockets_total Spare chat sockets by what became of them (this process).",
            "# TYPE grok2api_spare_sockets_total counter",
            *(f'grok2api_spare_sockets_total{{outcome="{k}"}} {n}' for k, n in counts.items()),
            "# HELP grok2api_spare_sockets Spare chat sockets waiting for their account's next turn (this process).",
            "# TYPE grok2api_spare_sockets gauge",
            f"grok2api_spare_sockets {len(self._spares)}",
        ]

    def __len__(self) -> int:
        return len(self._spares)

    def take(self, key: Hashable, version: object) -> WebSocket | None:
        """The spare waiting for ``key``, now the caller's (None when there is none for ``version``)."""
        spare = self._spares.pop(key, None)
        if spare is None:
            return None
        spare.expiry.cancel()
        if spare.version is not version:  # opened under settings that have changed since
            self._close(spare.ws)
            return None
        if spare.ws.known_closed():  # grok.com let it go while it waited
            self.stale += 1
            self._close(spare.ws)
            return None
        self.taken += 1
        return spare.ws

    def turn_began(self, key: Hashable, keep_for: float) -> bool:
        """Note a turn on ``key``; True when the one before it began within ``keep_for`` seconds (the account is
        chatting, so a spare for its next turn will likely be used)."""
        now = time.monotonic()
        before = self._last_turn.pop(key, None)  # re-inserted last: the dict stays in order of use
        self._last_turn[key] = now
        if len(self._last_turn) > _FORGET_AFTER:  # one key in, the longest unused one out
            del self._last_turn[next(iter(self._last_turn))]
        return before is not None and now - before < keep_for

    def refill(self, key: Hashable, version: object, keep_for: float, open: Callable[[], Awaitable[WebSocket]]) -> None:
        """Open a spare for ``key`` in the background unless one is waiting or on its way."""
        if self.closed or keep_for <= 0 or key in self._spares or key in self._opening:
            return
        if len(self._spares) + len(self._opening) >= self.max_spares:
            return
        task = asyncio.get_running_loop().create_task(self._open(key, version, keep_for, open), name="spare-socket")
        self._opening[key] = task

    async def _open(
        self, key: Hashable, version: object, keep_for: float, open: Callable[[], Awaitable[WebSocket]]
    ) -> None:
        try:
            ws = await open()
        except Exception as exc:  # the next turn opens its own socket, and meets the trouble itself
            self.failed += 1
            log.debug("a spare chat socket could not be opened: %r", exc)
            return
        finally:
            self._opening.pop(key, None)
        if self.closed:
            self._close(ws)
            return
        self.opened += 1
        expiry = asyncio.get_running_loop().call_later(keep_for, self._expire, key, ws)
        self._spares[key] = _Spare(ws, version, expiry)

    def _expire(self, key: Hashable, ws: WebSocket) -> None:
        spare = self._spares.get(key)
        if spare is not None and spare.ws is ws:
            del self._spares[key]
            self.expired += 1
            self._close(ws)

    def _close(self, ws: WebSocket) -> None:
        task = asyncio.get_running_loop().create_task(_quietly_close(ws), name="spare-socket-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every spare and stop the openings (at shutdown)."""
        self.closed = True
        opening = list(self._opening.values())
        for task in opening:
            task.cancel()
        for spare in self._spares.values():
            spare.expiry.cancel()
            self._close(spare.ws)
        self._spares.clear()
        pending = [*opening, *self._closing]
        if pending:
            await asyncio.wait(pending, timeout=5)


async def _quietly_close(ws: WebSocket) -> None:
    try:
        await ws.close()
    except Exception as exc:  # a socket grok.com already dropped: nothing left to close
        log.debug("closing a spare chat socket failed: %r", exc)

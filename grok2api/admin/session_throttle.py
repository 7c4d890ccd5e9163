"""Login throttling: after a few failures from one client, further attempts wait, longer each time."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    strikes: int = 0  # lockouts so far; each doubles the next one
    locked_until: float = 0.0


class LoginThrottle:
    """In memory, per process: a brute force against one worker is what it has to slow down, and
    scrypt already makes each guess cost ~50 ms of CPU."""

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        lockout: float = 30.0,
        max_lockout: float = 3600.0,
        max_clients: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_lockout = max_lockout
        self.max_clients = max_clients
        self._records: dict[str, _Record] = {}

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds this client must still wait (0 when it may try)."""
        rec = self._records.get(client)
        now = time.time() if now is None else now
        return max(0.0, rec.locked_until - now) if rec else 0.0

    def failure(self, client: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        rec = self._records.get(client)
        if rec is None:
            self._prune(now)
            rec = self._records[client] = _Record()
        rec.failures = [t for t in rec.failures if now - t < self.window] + [now]
        if len(rec.failures) >= self.max_failures:
            rec.locked_until = now + min(self.max_lockout, self.lockout * 2**rec.strikes)
            rec.strikes += 1
            rec.failures.clear()

    def success(self, client: str) -> None:
        self._records.pop(client, None)

    def _prune(self, now: float) -> None:
        # Bounded memory: forget clients whose failures and lockouts are all in the past.
        if len(self._records) < self.max_clients:
            return
        stale = [
            k
            for k, r in self._records.items()
            if r.locked_until <= now and all(now - t >= self.window for t in r.failures)
        ]
        for key in stale:
            del self._records[key]
        while len(self._records) >= self.max_clients:
            del self._records[next(iter(self._records))]

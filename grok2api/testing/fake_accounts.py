"""grok.com accounts as the fake keeps them: identity, tier, state, uploads and one query window per mode."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

from .fake_http import JsonDict
from .fake_modes import WINDOW_SECONDS, ModeSpec

STATES = ("ok", "invalid", "blocked")


def _user_id(token: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-grok-user:{token}"))


@dataclass
class ModeWindow:
    """The query window of one mode: ``total`` per ``window_seconds``, refilled lazily when it ends."""

    total: int
    remaining: int
    window_seconds: int = WINDOW_SECONDS
    started: float = field(default_factory=time.time)

    def refresh(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if now - self.started >= self.window_seconds:
            self.remaining = self.total
            self.started = now

    def take(self) -> bool:
        """One query of this window, if any is left."""
        self.refresh()
        if self.remaining < 1:
            return False
        self.remaining -= 1
        return True

    def seconds_left(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(1, math.ceil(self.started + self.window_seconds - now))

    def to_dict(self) -> JsonDict:
        self.refresh()
        return {"total": self.total, "remaining": self.remaining, "window_seconds": self.window_seconds}


@dataclass
class FakeAccount:
    """A grok.com account: who it is (``user_id`` from ``/api/auth/session``), its tier, and its windows."""

    token: str
    tier: str = "basic"
    state: str = "ok"
    user_id: str = ""
    windows: dict[str, ModeWindow] = field(default_factory=dict)
    uploads: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    in_flight: int = 0

    def __post_init__(self) -> None:
        if not self.user_id:
            self.user_id = _user_id(self.token)

    @property
    def email(self) -> str:
        return f"{self.user_id[:8]}@fake.grok.example"

    @property
    def organization_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-grok-org:{self.token}"))

    def window(self, mode: str) -> ModeWindow:
        """The mode's window, refreshed; a mode the account never heard of has an empty one."""
        window = self.windows.get(mode) or ModeWindow(total=0, remaining=0)
        window.refresh()
        return window

    def grant(self, mode: ModeSpec, total: int | None = None) -> None:
        """(Re)open the mode's window: its tier default, or ``total``."""
        count = mode.total(self.tier) if total is None else total
        self.windows[mode.id] = ModeWindow(total=count, remaining=count)

    def refresh(self) -> None:
        for window in self.windows.values():
            window.refresh()

    def end_windows(self) -> None:
        """Let every window run out now, so the next look refills it."""
        for window in self.windows.values():
            window.started -= window.window_seconds

    # The fast window under the names tests used before modes existed.

    @property
    def remaining(self) -> int:
        return self.window("fast").remaining

    @remaining.setter
    def remaining(self, value: int) -> None:
        self.window("fast").remaining = value

    quota = remaining

    @property
    def total(self) -> int:
        return self.window("fast").total

    @property
    def heavy_remaining(self) -> int:
        return self.window("heavy").remaining

    @property
    def heavy_total(self) -> int:
        return self.window("heavy").total

    @property
    def window_seconds(self) -> int:
        return self.window("fast").window_seconds

    @property
    def window_started(self) -> float:
        return self.window("fast").started

    @window_started.setter
    def window_started(self, value: float) -> None:
        for window in self.windows.values():
            window.started = value

    def seconds_left(self, mode: str = "fast") -> int:
        return self.window(mode).seconds_left()

    def to_dict(self) -> JsonDict:
        return {
            "token": self.token,
            "tier": self.tier,
            "state": self.state,
            "user_id": self.user_id,
            "remaining": self.remaining,
            "total": self.total,
            "heavy_remaining": self.heavy_remaining,
            "heavy_total": self.heavy_total,
            "windows": {mode: window.to_dict() for mode, window in self.windows.items()},
            "uploads": len(self.uploads),
            "in_flight": self.in_flight,
        }


def tier_from_token(token: str) -> str:
    """Tokens a test makes up carry their tier as a prefix (``super-…``, ``heavy-…``)."""
    for tier in ("super", "heavy"):
        if token.startswith(tier):
            return tier
    return "basic"


def state_from_token(token: str) -> str:
    for state in ("invalid", "blocked"):
        if token.startswith(state):
            return state
    return "ok"

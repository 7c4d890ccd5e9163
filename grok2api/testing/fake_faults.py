"""Faults tests queue for the fake: which names exist for which endpoint, and the queue they wait in.

A fault name's prefix picks its endpoint (``upload-``, ``uploadv2-``, ``post-``, ``limits-``, ``asset-``, ``auth-``,
``modes-``, ``home-``, ``mgw-``, ``imagine-``); anything else is a chat fault, which the REST chat and the mgw WebSocket
chat both take (the WebSocket maps it onto its own failure, see ``MGW_FROM_CHAT``). A new endpoint that takes faults
adds its prefix to ``SIDE_FAULTS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRE_STREAM_FAULTS = frozenset({"401", "403-blocked", "403-antibot", "403-cf", "429", "500", "502", "503", "empty"})
IN_STREAM_FAULTS = frozenset(
    (
        "inband-7 inband-8 inband-13 inband-usage model-error stream-errors malformed blank multi-json long-line reset "
        "no-model-response stall-first stall-mid trickle slow-tokens"
    ).split()
)
CHAT_FAULTS = PRE_STREAM_FAULTS | IN_STREAM_FAULTS

# The mgw WebSocket: refusals of the handshake, then what can go wrong once a response was asked for.
MGW_HANDSHAKE_FAULTS = PRE_STREAM_FAULTS - {"empty"}
MGW_STREAM_FAULTS = frozenset(
    (
        "antibot usage stream-error failed session-ended empty close unknown stall-first stall-mid slow-tokens "
        "malformed blank multi-json long-line inband-8 inband-13"
    ).split()
)
MGW_FAULTS = MGW_HANDSHAKE_FAULTS | MGW_STREAM_FAULTS
# The Imagine WebSocket: the same handshake refusals, then ``error`` frames or a cut connection.
IMAGINE_STREAM_FAULTS = frozenset({"error", "usage", "antibot", "close", "stall-first", "stall-mid", "close-mid"})
# REST chat faults that have no mgw namesake, and the mgw failure that stands in for them.
MGW_FROM_CHAT = {
    "inband-7": "antibot",
    "reset": "close",
    "inband-usage": "usage",
    "model-error": "stream-error",
    "stream-errors": "stream-error",
    "no-model-response": "session-ended",
    "trickle": "slow-tokens",
}
_STATUS_FAULTS = frozenset({"401", "403", "404", "413", "429", "500", "502", "503", "slow"})
SIDE_FAULTS: dict[str, frozenset[str]] = {
    "upload": _STATUS_FAULTS,
    "uploadv2": _STATUS_FAULTS | {"405", "410", "501"},
    "post": _STATUS_FAULTS,
    "limits": _STATUS_FAULTS | {"missing"},
    "asset": _STATUS_FAULTS | {"truncated", "redirect"},
    # Session answers of a 200: signed out, blocked, or a shape without a userId.
    "auth": _STATUS_FAULTS | {"unauthenticated", "blocked", "shape"},
    "modes": _STATUS_FAULTS,
    "home": _STATUS_FAULTS | {"403-cf"},
    "mgw": MGW_FAULTS,
    "imagine": MGW_HANDSHAKE_FAULTS | IMAGINE_STREAM_FAULTS,
}


@dataclass
class Fault:
    name: str
    param: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    token: str | None = None
    count: int = 1

    def value(self) -> float | None:
        raw: Any = self.param
        for key in ("seconds", "retry_after", "value", "param"):
            if raw is None:
                raw = self.params.get(key)
        if raw is None:
            return None
        try:
            return float(raw)
        except (TypeError, ValueError):
            return None

    def seconds(self, default: float) -> float:
        found = self.value()
        return default if found is None else found

    def style(self) -> str | None:
        style = self.param if self.param is not None else self.params.get("style")
        return None if style is None else str(style)


def fault_endpoint(name: str) -> str:
    """Which endpoint family a fault name targets: a ``SIDE_FAULTS`` prefix, or chat."""
    prefix, sep, _ = name.partition("-")
    return prefix if sep and prefix in SIDE_FAULTS else "chat"


def strip_prefix(name: str) -> str:
    """The fault name without its endpoint prefix (chat faults have none)."""
    endpoint = fault_endpoint(name)
    return name if endpoint == "chat" else name[len(endpoint) + 1 :]


def split_fault(spec: str) -> tuple[str, str | None]:
    name, sep, param = spec.strip().partition(":")
    return name.strip().lower(), (param.strip() if sep else None)


def check_fault_name(name: str) -> None:
    endpoint = fault_endpoint(name)
    known = CHAT_FAULTS if endpoint == "chat" else SIDE_FAULTS[endpoint]
    if strip_prefix(name) not in known:
        raise ValueError(f"unknown fault {name!r}")


class FaultQueue:
    """Queued faults, each good for ``count`` calls of its endpoint."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def push(self, fault: str, *, token: str | None, count: int, params: dict[str, Any]) -> None:
        name, param = split_fault(fault)
        check_fault_name(name)
        if count < 1:
            raise ValueError("count must be >= 1")
        self._faults.append(Fault(name, param, dict(params), token, count))

    def take(self, endpoint: str, token: str | None, names: frozenset[str] | None = None) -> Fault | None:
        """Pop one use of the first queued fault for this endpoint; faults scoped to the token go first.

        ``names`` (without the endpoint prefix) limits the pick, for an endpoint that takes its faults in stages.
        """
        candidates = [f for f in self._faults if fault_endpoint(f.name) == endpoint]
        if names is not None:
            candidates = [f for f in candidates if strip_prefix(f.name) in names]
        scoped = [f for f in candidates if f.token is not None and f.token == token]
        pick = next(iter(scoped), None) or next((f for f in candidates if f.token is None), None)
        if pick is None:
            return None
        pick.count -= 1
        if pick.count <= 0:
            self._faults.remove(pick)
        return pick

    def clear(self) -> None:
        self._faults.clear()

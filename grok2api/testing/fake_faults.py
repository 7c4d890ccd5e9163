"""Faults tests queue for the fake: which names exist for which endpoint, and the queue they wait in.

A fault name's prefix picks its endpoint (``upload-``, ``post-``, ``limits-``, ``asset-``); anything else is a chat
fault. A new endpoint that takes faults adds its prefix to ``SIDE_FAULTS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRE_STREAM_FAULTS = frozenset({"401", "403-blocked", "403-antibot", "403-cf", "429", "500", "502", "503", "empty"})
IN_STREAM_FAULTS = frozenset(
    (
        "inband-8 inband-13 inband-usage model-error stream-errors malformed blank multi-json long-line reset "
        "no-model-response stall-first stall-mid trickle slow-tokens"
    ).split()
)
CHAT_FAULTS = PRE_STREAM_FAULTS | IN_STREAM_FAULTS
_STATUS_FAULTS = frozenset({"401", "403", "404", "413", "429", "500", "502", "503", "slow"})
SIDE_FAULTS: dict[str, frozenset[str]] = {
    "upload": _STATUS_FAULTS,
    "post": _STATUS_FAULTS,
    "limits": _STATUS_FAULTS | {"missing"},
    "asset": _STATUS_FAULTS | {"truncated", "redirect"},
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
    """Which endpoint a fault name targets: upload, post, limits, asset or chat."""
    prefix, sep, _ = name.partition("-")
    return prefix if sep and prefix in SIDE_FAULTS else "chat"


def split_fault(spec: str) -> tuple[str, str | None]:
    name, sep, param = spec.strip().partition(":")
    return name.strip().lower(), (param.strip() if sep else None)


def check_fault_name(name: str) -> None:
    endpoint = fault_endpoint(name)
    known = CHAT_FAULTS if endpoint == "chat" else SIDE_FAULTS[endpoint]
    suffix = name if endpoint == "chat" else name[len(endpoint) + 1 :]
    if suffix not in known:
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

    def take(self, endpoint: str, token: str | None) -> Fault | None:
        """Pop one use of the first queued fault for this endpoint; faults scoped to the token go first."""
        candidates = [f for f in self._faults if fault_endpoint(f.name) == endpoint]
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

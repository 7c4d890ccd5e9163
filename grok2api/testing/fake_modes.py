"""grok.com's modes (its model ids) and the query windows each subscription tier gets per mode.

Since 2026 a chat names a *mode* (``fast``, ``auto``, ``expert``, ``heavy`` and whatever ``POST /rest/modes``
lists, e.g. ``grok-420-computer-use-sa``); every request costs one query of its mode's window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fake_http import JsonDict

TIERS = ("basic", "super", "heavy")
WINDOW_SECONDS = 7_200
DEFAULT_MODE = "auto"


@dataclass
class ModeSpec:
    """One entry of the mode catalogue; ``quotas`` is totalQueries per window by tier (0 = not offered)."""

    id: str
    title: str
    description: str = ""
    icon_hint: str = ""
    quotas: dict[str, int] = field(default_factory=dict)
    badge: str | None = None
    tags: list[str] = field(default_factory=list)
    # None: available exactly to the tiers it has quota for; True/False: forced for every account.
    available: bool | None = None

    def total(self, tier: str) -> int:
        return self.quotas.get(tier, 0)

    def offered_to(self, tier: str) -> bool:
        return self.available if self.available is not None else self.total(tier) > 0

    def to_dict(self, tier: str) -> JsonDict:
        state = "available" if self.offered_to(tier) else "unavailable"
        out: JsonDict = {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "availability": {state: {}},
            "iconHint": self.icon_hint,
            "tags": list(self.tags),
        }
        if self.badge is not None:
            out["badgeText"] = self.badge
        return out


def builtin_modes() -> dict[str, ModeSpec]:
    """The four modes every account sees, in grok.com's menu order, with late-2026 tier quotas."""
    modes = (
        ModeSpec("auto", "Auto", "Chooses Fast or Expert", "ICON_HINT_AUTO", {"basic": 20, "super": 50, "heavy": 150}),
        ModeSpec("fast", "Fast", "Quick responses", "ICON_HINT_FAST", {"basic": 30, "super": 140, "heavy": 400}),
        ModeSpec("expert", "Expert", "Thinks hard", "ICON_HINT_EXPERT", {"basic": 0, "super": 50, "heavy": 150}),
        ModeSpec("heavy", "Heavy", "Team of experts", "ICON_HINT_HEAVY", {"basic": 0, "super": 0, "heavy": 20}),
    )
    return {mode.id: mode for mode in modes}


def extra_mode(
    mode_id: str,
    *,
    title: str | None = None,
    description: str = "",
    quotas: dict[str, int] | None = None,
    badge: str | None = "Beta",
    available: bool | None = None,
) -> ModeSpec:
    """A mode beyond the four; by default offered to every tier with 20 queries per window."""
    unknown = set(quotas or {}) - set(TIERS)
    if unknown:
        raise ValueError(f"unknown tiers {sorted(unknown)}")
    return ModeSpec(
        id=mode_id,
        title=title or mode_id,
        description=description,
        icon_hint="ICON_HINT_EXPERIMENTAL",
        quotas=dict(quotas) if quotas is not None else dict.fromkeys(TIERS, 20),
        badge=badge,
        tags=["beta"] if badge else [],
        available=available,
    )

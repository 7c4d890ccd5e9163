"""The model catalogue as data: grok.com's chat *modes* (``fast``, ``auto``, ``expert``, ``heavy``, and
whatever ``POST /rest/modes`` offers), the public ids that name them (``grok-<mode>``), the older ids
kept as aliases so existing clients keep working, and the tier each mode needs by default.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

# Tiers, lowest first. A mode's minimum tier is a default; once an account's window for a mode is
# learned, its total (> 0 or not) decides instead.
TIERS = ("basic", "super", "heavy")
TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the public id clients send
    mode: str  # grok.com's mode id
    display_name: str
    description: str
    min_tier: str = "basic"
    reasoning: bool = False
    video: bool = False  # a video model: chats with it make a video
    kind: str = "chat"  # "chat", "image" (the Images API) or "video"
    max_output_tokens: int = 32768
    alias_of: str | None = None  # the canonical public id this alias stands for
    discovered: bool = False  # offered by grok.com's /rest/modes, not built in

    @property
    def heavy(self) -> bool:
        return self.mode == "heavy"

    @property
    def cost(self) -> int:
        """Queries of its mode's window one request takes."""
        return 1

    @property
    def super_only(self) -> bool:
        return TIER_RANK.get(self.min_tier, 0) > 0


class ModeEntry(msgspec.Struct, frozen=True):
    """One mode as grok.com's ``/rest/modes`` lists it."""

    id: str
    title: str = ""
    description: str = ""
    available: bool = True


_BUILT_IN = (
    ModelSpec(
        id="grok-fast",
        mode="fast",
        display_name="Grok Fast",
        description="grok.com's fast mode: quick answers with web search and image generation.",
    ),
    ModelSpec(
        id="grok-auto",
        mode="auto",
        min_tier="super",
        display_name="Grok Auto",
        description="grok.com's auto mode: thinks when the question needs it.",
        reasoning=True,
        max_output_tokens=65536,
    ),
    ModelSpec(
        id="grok-expert",
        mode="expert",
        min_tier="super",
        display_name="Grok Expert",
        description="grok.com's expert mode: always thinks before answering.",
        reasoning=True,
        max_output_tokens=65536,
    ),
    ModelSpec(
        id="grok-heavy",
        mode="heavy",
        min_tier="heavy",
        display_name="Grok Heavy",
        description="grok.com's heavy mode: several agents think together; heavy accounts only.",
        reasoning=True,
        max_output_tokens=65536,
    ),
    ModelSpec(
        id="grok-imagine-video",
        mode="imagine-video",
        kind="video",
        display_name="Grok Imagine Video",
        description="Text (and optionally an image) to a short video, through grok.com's Imagine.",
        video=True,
    ),
    ModelSpec(
        id="grok-imagine-image",
        mode="imagine-image",
        kind="image",
        display_name="Grok Imagine Image",
        description="Images from grok.com's Imagine (/v1/images/generations and /edits).",
    ),
    ModelSpec(
        id="grok-imagine-image-pro",
        mode="imagine-image-pro",
        kind="image",
        display_name="Grok Imagine Image Pro",
        description="Imagine's higher-quality image model.",
    ),
)

# Imagine edits spend their own window. Internal: clients name an image model, so it is neither listed
# nor found by id.
IMAGE_EDIT = ModelSpec(
    id="grok-imagine-image-edit",
    mode="imagine-image-edit",
    kind="image",
    display_name="Grok Imagine Image Edit",
    description="Imagine's image edit (/v1/images/edits).",
)

# Ids of the earlier catalogue, still accepted: alias -> canonical public id.
ALIASES = {
    "grok-3-fast": "grok-fast",
    "grok-4.1": "grok-fast",
    "grok-4-fast": "grok-auto",
    "grok-4.1-thinking": "grok-auto",
    "grok-4-fast-expert": "grok-expert",
    "grok-4-expert": "grok-expert",
    "grok-4-heavy": "grok-heavy",
    "grok-imagine-0.9": "grok-imagine-video",
}
DEFAULT_MODEL = "grok-fast"


def _alias(alias: str, spec: ModelSpec) -> ModelSpec:
    return msgspec.structs.replace(
        spec, id=alias, alias_of=spec.id, description=f"Alias of {spec.id}. {spec.description}"
    )


def _built_in() -> dict[str, ModelSpec]:
    specs = {s.id: s for s in _BUILT_IN}
    specs.update({alias: _alias(alias, specs[target]) for alias, target in ALIASES.items()})
    return specs


MODELS: dict[str, ModelSpec] = _built_in()


def public_id(mode: str) -> str:
    """``grok-<mode>``, without doubling a prefix the mode id already has."""
    return mode if mode.startswith("grok-") else f"grok-{mode}"


class Catalog:
    """The live catalogue: the built-in modes and aliases, plus modes grok.com offers that we do not
    know (usable at once as ``grok-<mode>``), minus modes grok.com marks unavailable."""

    def __init__(self) -> None:
        self._discovered: dict[str, ModelSpec] = {}
        self._unavailable: frozenset[str] = frozenset()

    def update(self, entries: Iterable[ModeEntry]) -> list[str]:
        """Take grok.com's mode list; returns the public ids that appeared."""
        entries = list(entries)
        known = {s.mode for s in _BUILT_IN}
        discovered = {
            public_id(e.id): ModelSpec(
                id=public_id(e.id),
                mode=e.id,
                display_name=e.title or e.id,
                description=e.description or f"grok.com's {e.id} mode.",
                discovered=True,
            )
            for e in entries
            if e.id and e.id not in known and e.available
        }
        new = sorted(set(discovered) - set(self._discovered))
        self._discovered = discovered
        self._unavailable = frozenset(e.id for e in entries if not e.available)
        return new

    def find(self, model_id: str) -> ModelSpec | None:
        spec = MODELS.get(model_id) or self._discovered.get(model_id)
        if spec is None or spec.mode in self._unavailable:
            return None
        return spec

    def models(self) -> list[ModelSpec]:
        """Every usable model id, built-in first, aliases after their target."""
        specs = [*MODELS.values(), *self._discovered.values()]
        return [s for s in specs if s.mode not in self._unavailable]

    def modes(self) -> list[str]:
        """The usable mode ids, each once."""
        return list(dict.fromkeys(s.mode for s in self.models()))


def find_model(model_id: str) -> ModelSpec | None:
    """A built-in model or alias (without grok.com's live list)."""
    return MODELS.get(model_id)

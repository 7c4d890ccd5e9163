"""The model catalogue: OpenAI model ids mapped to Grok's modelName/modelMode and quota cost."""

from __future__ import annotations

import msgspec


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    model_name: str
    model_mode: str
    rate_limit_name: str
    cost: int
    display_name: str
    description: str
    heavy: bool = False  # drawn from the separate heavy counter, super accounts only
    super_only: bool = False
    video: bool = False  # with an image attached, generates a video
    reasoning: bool = False
    max_output_tokens: int = 8192


IMAGE_GENERATION_COST = 4

_MODELS = (
    ModelSpec(
        id="grok-3-fast",
        model_name="grok-3",
        model_mode="MODEL_MODE_FAST",
        rate_limit_name="grok-3",
        cost=1,
        display_name="Grok 3 Fast",
        description="Fast general chat with web search and image generation.",
    ),
    ModelSpec(
        id="grok-4-fast",
        model_name="grok-4-mini-thinking-tahoe",
        model_mode="MODEL_MODE_GROK_4_MINI_THINKING",
        rate_limit_name="grok-4-mini-thinking-tahoe",
        cost=1,
        display_name="Grok 4 Fast",
        description="Grok 4 mini with visible reasoning.",
        reasoning=True,
        max_output_tokens=32768,
    ),
    ModelSpec(
        id="grok-4-fast-expert",
        model_name="grok-4-mini-thinking-tahoe",
        model_mode="MODEL_MODE_EXPERT",
        rate_limit_name="grok-4-mini-thinking-tahoe",
        cost=4,
        display_name="Grok 4 Fast Expert",
        description="Grok 4 mini in expert mode (costs 4 units).",
        reasoning=True,
        max_output_tokens=32768,
    ),
    ModelSpec(
        id="grok-4-expert",
        model_name="grok-4",
        model_mode="MODEL_MODE_EXPERT",
        rate_limit_name="grok-4",
        cost=4,
        display_name="Grok 4 Expert",
        description="Full Grok 4 in expert mode (costs 4 units).",
        reasoning=True,
        max_output_tokens=65536,
    ),
    ModelSpec(
        id="grok-4-heavy",
        model_name="grok-4-heavy",
        model_mode="MODEL_MODE_HEAVY",
        rate_limit_name="grok-4-heavy",
        cost=1,
        display_name="Grok 4 Heavy",
        description="Multi-agent Grok 4; super accounts only, separate heavy quota.",
        heavy=True,
        super_only=True,
        reasoning=True,
        max_output_tokens=65536,
    ),
    ModelSpec(
        id="grok-imagine-0.9",
        model_name="grok-3",
        model_mode="MODEL_MODE_FAST",
        rate_limit_name="grok-3",
        cost=1,
        display_name="Grok Imagine 0.9",
        description="Image + prompt to video; without an image it answers as a normal chat.",
        video=True,
    ),
    ModelSpec(
        id="grok-4.1",
        model_name="grok-4-1-non-thinking-w-tool",
        model_mode="MODEL_MODE_GROK_4_1",
        rate_limit_name="grok-4-1-non-thinking-w-tool",
        cost=1,
        display_name="Grok 4.1",
        description="Grok 4.1 without reasoning.",
        max_output_tokens=32768,
    ),
    ModelSpec(
        id="grok-4.1-thinking",
        model_name="grok-4-1-thinking-1108b",
        model_mode="MODEL_MODE_AUTO",
        rate_limit_name="grok-4-1-thinking-1108b",
        cost=1,
        display_name="Grok 4.1 Thinking",
        description="Grok 4.1 with reasoning.",
        reasoning=True,
        max_output_tokens=65536,
    ),
)

MODELS: dict[str, ModelSpec] = {m.id: m for m in _MODELS}


def find_model(model_id: str) -> ModelSpec | None:
    return MODELS.get(model_id)

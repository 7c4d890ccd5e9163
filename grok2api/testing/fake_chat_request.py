"""The parts of an E1 chat body that steer the fake: model and mode, attachments, media and magic markers."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from .fake_faults import CHAT_FAULTS, Fault, split_fault
from .fake_http import JsonDict, bad_request
from .fake_state import EXPERT_COST, IMAGE_COST, FakeAccount

MARKERS = frozenset(
    (
        "think search cite artifact header draw draw-moderated video-moderated video-in-attachments emoji "
        "list-token dict-token empty-token late-think unclosed-think no-model sse"
    ).split()
)
_MARKER_RE = re.compile(r"\[\[([^\[\]\n]{1,80})\]\]")
_DRAW_RE = re.compile(r"\bdraw|画", re.IGNORECASE)
_POST_ID_RE = re.compile(r"grok\.com/imagine/([0-9A-Za-z-]{6,})")


@dataclass
class Markers:
    flags: set[str] = field(default_factory=set)
    fault: Fault | None = None
    token_count: int | None = None

    def has(self, flag: str) -> bool:
        return flag in self.flags


def parse_markers(message: str) -> Markers:
    markers = Markers()
    for raw in _MARKER_RE.findall(message):
        text = raw.strip()
        lowered = text.lower()
        if lowered.startswith("fault:") and markers.fault is None:
            name, param = split_fault(text[len("fault:") :])
            if name in CHAT_FAULTS:
                markers.fault = Fault(name, param)
        elif lowered.startswith("tokens:"):
            with contextlib.suppress(ValueError):
                markers.token_count = max(0, int(lowered[len("tokens:") :]))
        elif lowered in MARKERS:
            markers.flags.add(lowered)
    return markers


@dataclass
class Chat:
    """The parts of an E1 body that steer the fake."""

    message: str
    model: str | None
    mode: str
    temporary: bool
    image_count: int
    attachments: list[str]
    markers: Markers
    video: bool
    draw: bool

    @property
    def heavy(self) -> bool:
        return self.mode in ("MODEL_MODE_HEAVY", "heavy") or self.model == "grok-4-heavy"

    @property
    def cost(self) -> int:
        base = EXPERT_COST if self.mode in ("MODEL_MODE_EXPERT", "expert") else 1
        return base + (IMAGE_COST if self.draw else 0)

    @property
    def prompt(self) -> str:
        """The message without magic markers, which the default answer echoes."""
        return " ".join(_MARKER_RE.sub(" ", self.message).split())

    @property
    def post_id(self) -> str | None:
        match = _POST_ID_RE.search(self.message)
        return match.group(1) if match else None


def _is_video(body: JsonDict) -> bool:
    overrides = body.get("toolOverrides")
    media = body.get("mediaGenInput")
    return (isinstance(overrides, dict) and overrides.get("videoGen") is True) or (
        isinstance(media, dict) and isinstance(media.get("textToVideo"), dict)
    )


def parse_chat(body: JsonDict, account: FakeAccount) -> Chat:
    message = body.get("message")
    if not isinstance(message, str):
        raise bad_request("message must be a string")
    video = _is_video(body)
    model_name, model_mode, mode_id = body.get("modelName"), body.get("modelMode"), body.get("modeId")
    # 2025 bodies name a model and a mode, 2026 bodies a modeId; video/imagine bodies carry only a model.
    if not (isinstance(mode_id, str) or (isinstance(model_name, str) and (isinstance(model_mode, str) or video))):
        raise bad_request("modelName and modelMode (or modeId) are required")
    attachments = _attachments(body, account)
    markers = parse_markers(message)
    count = body.get("imageGenerationCount", 2)
    wants_images = body.get("enableImageGeneration") is not False
    draw = not video and (
        markers.has("draw") or markers.has("draw-moderated") or (wants_images and bool(_DRAW_RE.search(message)))
    )
    return Chat(
        message=message,
        model=model_name if isinstance(model_name, str) else (mode_id if isinstance(mode_id, str) else None),
        mode=model_mode if isinstance(model_mode, str) else (mode_id if isinstance(mode_id, str) else ""),
        temporary=body.get("temporary") is True,
        image_count=min(max(count, 1), 10) if isinstance(count, int) else 2,
        attachments=attachments,
        markers=markers,
        video=video,
        draw=draw,
    )


def _attachments(body: JsonDict, account: FakeAccount) -> list[str]:
    raw = body.get("fileAttachments", [])
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise bad_request("fileAttachments must be a list of file ids")
    for file_id in raw:
        if file_id not in account.uploads:
            raise bad_request(f"File {file_id} not found")
    return list(raw)

"""The parts of an E1 chat body that steer the fake: the mode, attachments, media and magic markers.

The body names a mode (``modeId``, §2.3 of the 2026 protocol). A 2025 body naming ``modelName``/``modelMode`` is
refused the way grok.com refuses it, except Imagine media bodies, which still name a model (the 2025 video body,
``toolOverrides.videoGen``, is refused too).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from .fake_accounts import FakeAccount
from .fake_faults import CHAT_FAULTS, Fault, split_fault
from .fake_http import JsonDict, Reject, bad_request, json_response
from .fake_video import VideoOrder, old_video_body, parse_video, video_body

MARKERS = frozenset(
    (
        "think search cite artifact header draw draw-moderated video-moderated video-in-attachments emoji "
        "list-token dict-token empty-token late-think unclosed-think no-model sse packed echo cite-card card-json "
        "tool-call tool-prose tool-parallel tool-split tool-nested tool-repair tool-never tool-done "
        "json-valid json-fenced json-repair json-never"
    ).split()
)
ERR_OUTDATED_CLIENT = {"error": {"code": 3, "message": "Invalid request. Please update your client"}}
_MARKER_RE = re.compile(r"\[\[([^\[\]\n]{1,80})\]\]")
_DRAW_RE = re.compile(r"\bdraw|画", re.IGNORECASE)


@dataclass
class Markers:
    flags: set[str] = field(default_factory=set)
    fault: Fault | None = None
    token_count: int | None = None

    def has(self, flag: str) -> bool:
        return flag in self.flags


def parse_markers(message: str, faults: frozenset[str] = CHAT_FAULTS) -> Markers:
    """The markers of a prompt; ``faults`` are the fault names the endpoint knows."""
    markers = Markers()
    for raw in _MARKER_RE.findall(message):
        text = raw.strip()
        lowered = text.lower()
        if lowered.startswith("fault:") and markers.fault is None:
            name, param = split_fault(text[len("fault:") :])
            if name in faults:
                markers.fault = Fault(name, param)
        elif lowered.startswith("tokens:"):
            with contextlib.suppress(ValueError):
                markers.token_count = max(0, int(lowered[len("tokens:") :]))
        elif lowered in MARKERS:
            markers.flags.add(lowered)
    return markers


def strip_markers(message: str) -> str:
    """The message without magic markers, which the default answer echoes."""
    return " ".join(_MARKER_RE.sub(" ", message).split())


def wants_draw(message: str, markers: Markers, images_enabled: bool) -> bool:
    """An image answer: a draw marker, or a drawing request in words while image generation is on."""
    return markers.has("draw") or markers.has("draw-moderated") or (images_enabled and bool(_DRAW_RE.search(message)))


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
    video: VideoOrder | None
    draw: bool

    @property
    def prompt(self) -> str:
        return strip_markers(self.message)


def parse_chat(body: JsonDict, account: FakeAccount) -> Chat:
    message = body.get("message")
    if not isinstance(message, str):
        raise bad_request("message must be a string")
    media = isinstance(body.get("mediaGenInput"), dict)  # Imagine media bodies keep naming a model
    model_name, mode_id = body.get("modelName"), body.get("modeId")
    if old_video_body(body) or (not media and ("modelName" in body or "modelMode" in body)):
        raise Reject(json_response(400, ERR_OUTDATED_CLIENT))
    if not media and not (isinstance(mode_id, str) and mode_id):
        raise bad_request("modeId is required")
    attachments = _attachments(body, account)
    video = parse_video(body, account) if video_body(body) else None
    markers = parse_markers(message)
    count = body.get("imageGenerationCount", 2)
    draw = video is None and wants_draw(message, markers, body.get("enableImageGeneration") is not False)
    return Chat(
        message=message,
        model=model_name if isinstance(model_name, str) else (mode_id if isinstance(mode_id, str) else None),
        # Media bodies carry no mode; their query comes out of the fast window (videos are counted apart).
        mode=mode_id if isinstance(mode_id, str) and mode_id else "fast",
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

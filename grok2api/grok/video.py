"""grok.com's video request (Imagine, late 2026): ``modelName: imagine-video-gen`` with a
``mediaGenInput`` of ``textToVideo``, or ``imageToVideo`` naming an uploaded image, posted to
``conversations/new`` from the Imagine page. The answer streams ``streamingVideoGenerationResponse``
frames (see ``events.py``)."""

from __future__ import annotations

from typing import Any

import msgspec

from ..settings import RuntimeSettings

VIDEO_MODEL = "imagine-video-gen"
IMAGINE_KIND = "CONVERSATION_KIND_IMAGINE"
DURATIONS = (6, 10, 15)  # the lengths grok.com offers, in seconds
BASIC_MAX_SECONDS = 6  # longer videos get 429 on basic accounts
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "3:2", "2:3")
RESOLUTIONS = ("480p", "720p")


class VideoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What kind of video to ask for."""

    duration: int = BASIC_MAX_SECONDS
    aspect_ratio: str = "16:9"
    resolution: str = "720p"

    @property
    def min_tier(self) -> str:
        """The lowest account tier grok.com makes this video for."""
        return "basic" if self.duration <= BASIC_MAX_SECONDS else "super"


def imagine_referer(settings: RuntimeSettings) -> str:
    return f"{settings.upstream_url}/imagine"


def video_payload(prompt: str, options: VideoOptions, file_id: str | None, settings: RuntimeSettings) -> dict[str, Any]:
    """The ``conversations/new`` body of one video: text to video, or ``file_id`` (an uploaded image) to video."""
    spec: dict[str, Any] = {
        "prompt": prompt,
        "aspectRatio": options.aspect_ratio,
        "duration": options.duration,
        "resolutionName": options.resolution,
    }
    if file_id is None:
        media = {"textToVideo": spec}
    else:
        media = {"imageToVideo": {**spec, "inputAssets": [file_id], "mode": "custom"}}
    return {
        "temporary": settings.temporary,
        "modelName": VIDEO_MODEL,
        "message": f"{prompt} --mode=custom",
        "enableImageStreaming": True,
        "enableSideBySide": True,
        "sendFinalMetadata": True,
        "responseMetadata": {"experiments": [], "modelConfigOverride": {"modelMap": {}}},
        "mediaGenInput": media,
        "kind": IMAGINE_KIND,
    }

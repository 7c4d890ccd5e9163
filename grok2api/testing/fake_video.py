"""The Imagine video body of E1 (``modelName: imagine-video-gen``, late 2026): what it asks for, whether the
account may have it, and what the fake remembers of each generation.

``mediaGenInput.textToVideo{prompt,aspectRatio,duration,resolutionName}`` makes a video from text;
``mediaGenInput.imageToVideo{…,inputAssets:[fileMetadataId],mode:"custom"}`` from an image the account uploaded.
The 2025 shape (``toolOverrides.videoGen`` after a media post) is refused like every outdated body. Basic accounts
get at most 6 s: a longer video is a 429 "Too many requests", as grok.com answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fake_accounts import FakeAccount
from .fake_errors import ERR_RATE
from .fake_http import JsonDict, Reject, bad_request, json_response
from .fake_imagine_windows import charge_imagine

VIDEO_MODEL = "imagine-video-gen"
IMAGINE_KIND = "CONVERSATION_KIND_IMAGINE"
MAX_SECONDS = 15
BASIC_MAX_SECONDS = 6
ASPECT_RATIOS = frozenset(("16:9", "9:16", "1:1", "3:2", "2:3"))
RESOLUTIONS = frozenset(("480p", "720p"))


@dataclass
class VideoOrder:
    """What one video body asks for."""

    prompt: str
    duration: int
    aspect_ratio: str
    resolution: str
    input_assets: list[str]


@dataclass
class VideoRecord:
    """One video generation the fake started. ``delivered``: its stream reached the last frame (a client that
    left mid-stream never received the video)."""

    token: str
    video_id: str
    order: VideoOrder
    moderated: bool = False
    delivered: bool = False


def old_video_body(body: JsonDict) -> bool:
    """The 2025 video request: a media post, then a chat with ``toolOverrides.videoGen``."""
    overrides = body.get("toolOverrides")
    return isinstance(overrides, dict) and overrides.get("videoGen") is True


def video_body(body: JsonDict) -> bool:
    media = body.get("mediaGenInput")
    return isinstance(media, dict) and ("textToVideo" in media or "imageToVideo" in media)


def parse_video(body: JsonDict, account: FakeAccount) -> VideoOrder:
    """The order of a video body; a 400 naming the first thing grok.com would not take."""
    if body.get("modelName") != VIDEO_MODEL:
        raise bad_request(f"video generation needs modelName {VIDEO_MODEL}")
    if body.get("kind") != IMAGINE_KIND:
        raise bad_request(f"video generation needs kind {IMAGINE_KIND}")
    media: dict[str, Any] = body["mediaGenInput"]
    if ("textToVideo" in media) == ("imageToVideo" in media):
        raise bad_request("mediaGenInput needs exactly one of textToVideo and imageToVideo")
    image = "imageToVideo" in media
    spec = media["imageToVideo" if image else "textToVideo"]
    if not isinstance(spec, dict):
        raise bad_request("mediaGenInput is malformed")
    prompt, duration = spec.get("prompt"), spec.get("duration")
    ratio, resolution = spec.get("aspectRatio"), spec.get("resolutionName")
    if not isinstance(prompt, str):
        raise bad_request("prompt must be a string")
    if not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= MAX_SECONDS:
        raise bad_request(f"duration must be 1 to {MAX_SECONDS} seconds")
    if ratio not in ASPECT_RATIOS:
        raise bad_request(f"Invalid aspect ratio: {ratio}")
    if resolution not in RESOLUTIONS:
        raise bad_request(f"Invalid resolution: {resolution}")
    assets: list[str] = []
    if image:
        raw = spec.get("inputAssets")
        if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
            raise bad_request("inputAssets must list the uploaded image")
        if spec.get("mode") != "custom":
            raise bad_request("imageToVideo needs mode custom")
        for asset in raw:
            if asset not in account.uploads:
                raise bad_request(f"File {asset} not found")
        assets = list(raw)
    return VideoOrder(prompt, duration, str(ratio), str(resolution), assets)


def admit_video(account: FakeAccount, order: VideoOrder) -> None:
    """Basic accounts make videos of up to 6 s; grok.com answers longer ones with 429."""
    if account.tier == "basic" and order.duration > BASIC_MAX_SECONDS:
        raise Reject(json_response(429, ERR_RATE))
    if not charge_imagine(account, "video"):
        raise Reject(json_response(429, ERR_RATE))

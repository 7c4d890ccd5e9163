"""A chat turn: uploads, the chat or video request it becomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from grok2api.grok.catalog import MODELS
from grok2api.grok.chat import ChatTurn, mode_chat_payload, prepare_turn
from grok2api.grok.client import GrokClient
from grok2api.grok.transport import AiohttpTransport
from grok2api.grok.video import VideoOptions
from grok2api.settings import RuntimeSettings

SETTINGS = RuntimeSettings(upstream_url="http://up.test", assets_url="http://assets.test")


@dataclass
class Image:
    file_name: str = "image.png"
    mime: str = "image/png"
    b64: str = "aGk="


class StubClient(GrokClient):
    """Records uploads and session checks, without a network."""

    def __init__(self) -> None:
        super().__init__(AiohttpTransport())
        self.uploads: list[str] = []
        self.sessions = 0

    async def upload(
        self, token: str, name: str, mime: str, b64: str, settings: RuntimeSettings, *, source: str | None = None
    ) -> tuple[str, str]:
        self.uploads.append(name)
        n = len(self.uploads)
        return f"file-{n}", f"users/u/file-{n}/content"

    async def auth_session(self, token: str, settings: RuntimeSettings) -> str:
        self.sessions += 1
        return f"uid-of-{token}"


async def test_a_chat_turn_goes_over_the_websocket_with_every_image_mentioned() -> None:
    client = StubClient()
    turn = ChatTurn(MODELS["grok-3-fast"], "hi", [Image(), Image()])
    request = await prepare_turn(client, "tok", "", turn, SETTINGS)
    assert client.uploads == ["image.png", "image.png"]
    assert (request.mode, request.message, request.file_ids) == ("fast", "hi", ["file-1", "file-2"])
    assert (request.payload, request.user_id, client.sessions) == (None, "uid-of-tok", 1)  # identity resolved
    known = await prepare_turn(client, "tok", "uid-known", ChatTurn(MODELS["grok-4-expert"], "hi"), SETTINGS)
    assert (known.user_id, known.mode, client.sessions) == ("uid-known", "expert", 1)  # not asked again


async def test_the_rest_fallback_posts_the_mode_chat_body() -> None:
    client = StubClient()
    rest = msgspec.structs.replace(SETTINGS, chat_transport="rest")
    request = await prepare_turn(client, "tok", "", ChatTurn(MODELS["grok-auto"], "hi", [Image()]), rest)
    assert request.payload is not None and client.sessions == 0
    assert (request.payload["modeId"], request.payload["fileAttachments"]) == ("auto", ["file-1"])


async def test_a_video_turn_asks_imagine_for_a_video_of_the_first_image() -> None:
    client = StubClient()
    spec = MODELS["grok-imagine-0.9"]
    options = VideoOptions(duration=10, aspect_ratio="9:16", resolution="480p")
    turn = ChatTurn(spec, "make it move", [Image(), Image()], video=options)
    request = await prepare_turn(client, "tok", "", turn, SETTINGS)
    assert client.uploads == ["image.png"] and client.sessions == 0  # only the first image makes the video
    payload: dict[str, Any] | None = request.payload
    assert payload is not None and request.referer == "http://up.test/imagine"
    assert (payload["modelName"], payload["kind"]) == ("imagine-video-gen", "CONVERSATION_KIND_IMAGINE")
    assert payload["message"] == "make it move --mode=custom"
    assert payload["mediaGenInput"] == {
        "imageToVideo": {
            "prompt": "make it move",
            "aspectRatio": "9:16",
            "duration": 10,
            "resolutionName": "480p",
            "inputAssets": ["file-1"],
            "mode": "custom",
        }
    }
    assert "toolOverrides" not in payload and "fileAttachments" not in payload and "modeId" not in payload


async def test_a_video_turn_without_an_image_is_text_to_video_with_the_default_options() -> None:
    client = StubClient()
    request = await prepare_turn(client, "tok", "", ChatTurn(MODELS["grok-imagine-video"], "a sunrise"), SETTINGS)
    assert client.uploads == [] and client.sessions == 0 and request.file_ids == []
    assert request.payload is not None
    assert request.payload["mediaGenInput"] == {
        "textToVideo": {"prompt": "a sunrise", "aspectRatio": "16:9", "duration": 6, "resolutionName": "720p"}
    }
    assert VideoOptions().min_tier == "basic" and VideoOptions(duration=10).min_tier == "super"


def test_the_mode_chat_body_names_the_mode_and_no_model() -> None:
    body = mode_chat_payload("expert", "hi", ["file-1"], SETTINGS)
    assert (body["modeId"], body["message"], body["fileAttachments"]) == ("expert", "hi", ["file-1"])
    assert "modelName" not in body and "modelMode" not in body
    assert (body["temporary"], body["disableMemory"]) == (True, True)
    kept = mode_chat_payload("fast", "hi", [], RuntimeSettings(temporary=False))
    assert (kept["temporary"], kept["disableMemory"], kept["fileAttachments"]) == (False, False, [])

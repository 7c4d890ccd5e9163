"""A chat turn: uploads, the chat or video request it becomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from grok2api.grok.catalog import MODELS
from grok2api.grok.chat import ChatTurn, mode_chat_payload, prepare_turn
from grok2api.grok.client import GrokClient
from grok2api.grok.errors import UpstreamHTTPError
from grok2api.grok.transport import AiohttpTransport
from grok2api.settings import RuntimeSettings

SETTINGS = RuntimeSettings(upstream_url="http://up.test", assets_url="http://assets.test")


@dataclass
class Image:
    file_name: str = "image.png"
    mime: str = "image/png"
    b64: str = "aGk="


class StubClient(GrokClient):
    """Records uploads and answers media posts, without a network."""

    def __init__(self, post_fails: bool = False) -> None:
        super().__init__(AiohttpTransport())
        self.uploads: list[str] = []
        self.sessions = 0
        self.post_fails = post_fails

    async def upload(
        self, token: str, name: str, mime: str, b64: str, settings: RuntimeSettings, *, source: str | None = None
    ) -> tuple[str, str]:
        self.uploads.append(name)
        n = len(self.uploads)
        return f"file-{n}", f"users/u/file-{n}/content"

    async def create_post(self, token: str, media_url: str, settings: RuntimeSettings) -> str:
        if self.post_fails:
            raise UpstreamHTTPError(500, "down")
        assert media_url == "http://assets.test/users/u/file-1/content"
        return "post-1"

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


async def test_a_video_turn_posts_the_first_image_and_refers_to_the_post() -> None:
    client = StubClient()
    spec = MODELS["grok-imagine-0.9"]
    request = await prepare_turn(client, "tok", "", ChatTurn(spec, "make it move", [Image(), Image()]), SETTINGS)
    assert client.uploads == ["image.png"]  # only the first image makes the video
    payload: dict[str, Any] | None = request.payload
    assert payload is not None
    assert payload["message"] == "http://up.test/imagine/post-1  make it move --mode=custom"
    assert payload["fileAttachments"] == ["file-1"]
    assert request.referer == "http://up.test/imagine/post-1"


async def test_a_video_turn_falls_back_to_the_asset_link_when_the_post_fails() -> None:
    client = StubClient(post_fails=True)
    spec = MODELS["grok-imagine-0.9"]
    request = await prepare_turn(client, "tok", "", ChatTurn(spec, "move", [Image()]), SETTINGS)
    assert request.payload is not None
    assert request.payload["message"].startswith("http://assets.test/post/users/u/file-1/content  move")
    assert request.referer == "http://up.test/imagine/file-1"


def test_the_mode_chat_body_names_the_mode_and_no_model() -> None:
    body = mode_chat_payload("expert", "hi", ["file-1"], SETTINGS)
    assert (body["modeId"], body["message"], body["fileAttachments"]) == ("expert", "hi", ["file-1"])
    assert "modelName" not in body and "modelMode" not in body
    assert (body["temporary"], body["disableMemory"]) == (True, True)
    kept = mode_chat_payload("fast", "hi", [], RuntimeSettings(temporary=False))
    assert (kept["temporary"], kept["disableMemory"], kept["fileAttachments"]) == (False, False, [])

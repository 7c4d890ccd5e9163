from __future__ import annotations

import base64
import re
from typing import Any

import aiohttp
import openai
import pytest

from grok2api.errors import UpstreamError
from grok2api.grok.events import Text, VideoProgress
from grok2api.openai.render import Translator
from grok2api.settings import RuntimeSettings
from grok2api.testing.fake_grok import TINY_JPEG, TINY_MP4, UPLOAD_V2_PATH, FakeGrok
from grok2api.testing.fake_upload import sent_file

from harness import LiveGateway, upstream_chats

MODEL = "grok-imagine-0.9"
JPEG_URL = "data:image/jpeg;base64," + base64.b64encode(TINY_JPEG).decode()
VIDEO_TAG = re.compile(r'<video src="([^"]+)" controls="controls"></video>')


def _ask(prompt: str, images: int = 1) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": JPEG_URL}} for _ in range(images)]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": prompt}]}]


def _calls(fake: FakeGrok, path: str) -> list[Any]:
    return [r for r in fake.requests if r.path == path]


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


def _boxes(data: bytes) -> dict[bytes, bytes]:
    """Top-level ISO-BMFF boxes of ``data`` by type (size-prefixed; every byte must be accounted for)."""
    out: dict[bytes, bytes] = {}
    at = 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        assert size >= 8 and at + size <= len(data), "a box runs past the end of the file"
        out[data[at + 4 : at + 8]] = data[at + 8 : at + size]
        at += size
    return out


def assert_playable_mp4(data: bytes) -> None:
    """A file a player can open: ftyp, a movie with a video track (H.264 sample entry) and media data."""
    top = _boxes(data)
    assert top[b"ftyp"][:4] in (b"isom", b"mp42", b"avc1")
    moov = _boxes(top[b"moov"])
    assert b"mvhd" in moov and b"trak" in moov
    assert b"vide" in moov[b"trak"] and b"avc1" in moov[b"trak"]  # handler type and sample entry
    assert len(top[b"mdat"]) > 0


async def test_image_and_prompt_make_a_playable_video(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    stream = await client.chat.completions.create(model=MODEL, messages=_ask("make the sun rise"), stream=True)
    content, reasoning, finish = [], [], None
    async for chunk in stream:
        if chunk.choices:
            content.append(chunk.choices[0].delta.content or "")
            reasoning.append(getattr(chunk.choices[0].delta, "reasoning_content", None) or "")
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "stop"
    progress = re.findall(r"Generating video: (\d+)%", "".join(reasoning))
    assert progress == ["1", "5", "25", "50", "75", "95", "100"]
    (src,) = VIDEO_TAG.findall("".join(content))
    assert re.fullmatch(r"/images/users-[0-9a-f-]+-generated-[0-9a-f-]+-generated_video\.mp4", src)

    status, body, headers = await _get(gateway.url + src)
    assert (status, headers["Content-Type"]) == (200, "video/mp4")
    assert body == TINY_MP4
    assert_playable_mp4(body)
    status, part, headers = await _get(gateway.url + src, {"Range": "bytes=0-7"})
    assert status == 206 and part == TINY_MP4[:8]
    assert headers["Content-Range"] == f"bytes 0-7/{len(TINY_MP4)}"

    (upload,) = _calls(fake, UPLOAD_V2_PATH)
    (post,) = _calls(fake, "/rest/media/post/create")
    (chat,) = fake.chat_calls()
    assert fake.mgw_sessions() == []  # a video is an Imagine media call, over REST even with chat_transport=ws
    file_id = chat.json["fileAttachments"][0]
    file_uri = f"users/{fake.account('director').user_id}/{file_id}/content"
    assert post.json == {"media_url": f"{fake.assets_url}/{file_uri}", "media_type": "MEDIA_POST_TYPE_IMAGE"}
    post_id = next(iter(fake.posts))
    assert chat.json["toolOverrides"] == {"videoGen": True}
    assert chat.json["message"] == f"{fake.base_url}/imagine/{post_id}  make the sun rise --mode=custom"
    assert chat.headers["referer"] == f"{fake.base_url}/imagine/{post_id}"
    assert sent_file(upload).data == TINY_JPEG


async def test_video_without_stream_and_only_the_first_image(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    reply = await client.chat.completions.create(model=MODEL, messages=_ask("make it rain", images=3))
    (src,) = VIDEO_TAG.findall(reply.choices[0].message.content)
    assert (await _get(gateway.url + src))[1] == TINY_MP4
    assert "Generating video: 100%" in reply.choices[0].message.reasoning_content
    assert len(_calls(fake, UPLOAD_V2_PATH)) == 1  # the reference also used only the first


async def test_without_an_image_it_answers_as_a_chat(
    fake: FakeGrok, gateway: LiveGateway, client: Any, chat_transport: str
) -> None:
    await gateway.add_accounts("director")
    reply = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}])
    assert reply.choices[0].message.content == "Hello! You said: hi there"
    (chat,) = upstream_chats(fake)
    assert (chat.transport, chat.mode, chat.message, chat.file_ids) == (chat_transport, "fast", "hi there", [])
    if chat_transport == "rest":
        (call,) = fake.chat_calls()
        assert "toolOverrides" not in call.json and "modelName" not in call.json  # a plain chat, not a video
    assert _calls(fake, "/rest/media/post/create") == [] and _calls(fake, UPLOAD_V2_PATH) == []


async def test_failed_media_post_falls_back_to_the_asset_link(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    await gateway.add_accounts("director")
    fake.push_fault("post-500")
    reply = await client.chat.completions.create(model=MODEL, messages=_ask("zoom out"))
    assert VIDEO_TAG.search(reply.choices[0].message.content)
    (chat,) = fake.chat_calls()
    file_id = chat.json["fileAttachments"][0]
    file_uri = f"users/{fake.account('director').user_id}/{file_id}/content"
    assert chat.json["message"] == f"{fake.assets_url}/post/{file_uri}  zoom out --mode=custom"


async def test_video_url_in_file_attachments(gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    reply = await client.chat.completions.create(model=MODEL, messages=_ask("pan left [[video-in-attachments]]"))
    (src,) = VIDEO_TAG.findall(reply.choices[0].message.content)
    assert (await _get(gateway.url + src))[1] == TINY_MP4


async def test_moderated_video_is_a_clear_error(gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=MODEL, messages=_ask("[[video-moderated]] dance"))
    assert info.value.code == "content_policy_violation"
    assert "moderated the video" in info.value.message
    stream = await client.chat.completions.create(model=MODEL, messages=_ask("[[video-moderated]] dance"), stream=True)
    with pytest.raises(openai.APIError, match="moderated the video"):
        async for _ in stream:
            pass


class _NoMedia:
    async def image_markdown(self, paths: list[str], token: str, settings: RuntimeSettings) -> str:
        raise AssertionError("no images expected")

    async def video_markdown(self, path: str, token: str, settings: RuntimeSettings) -> str:
        raise AssertionError("no video expected")


async def test_a_video_that_never_arrives_is_an_error() -> None:
    tr = Translator(RuntimeSettings(), _NoMedia(), "token")
    assert (await tr.translate(VideoProgress(40))).reasoning == "Generating video: 40%\n"
    await tr.translate(Text("I generated a video"))
    with pytest.raises(UpstreamError, match="before the video was ready"):
        tr.finish()

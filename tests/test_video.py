"""Videos in the chat: grok-imagine-video (and its alias grok-imagine-0.9) asks Imagine for a video of the text
or of the first image, reports progress as reasoning and answers with a <video> tag."""

from __future__ import annotations

import base64
import re
from typing import Any

import aiohttp
import openai
import pytest

from grok2api.conversation.answer import AnswerReader
from grok2api.conversation.events import ReasoningDelta
from grok2api.errors import UpstreamError
from grok2api.grok.events import Text, VideoProgress
from grok2api.settings import RuntimeSettings
from grok2api.store.base import AccountPatch, ModeQuota
from grok2api.testing.fake_grok import TINY_JPEG, TINY_MP4, UPLOAD_V2_PATH, FakeGrok
from grok2api.testing.fake_upload import sent_file

from harness import LiveGateway, assert_playable_mp4

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
    (chat,) = fake.chat_calls()
    assert fake.mgw_sessions() == []  # a video is an Imagine media call, over REST even with chat_transport=ws
    assert _calls(fake, "/rest/media/post/create") == []  # the 2025 media post is gone
    file_id = fake.videos[0].order.input_assets[0]
    assert file_id in fake.account("director").uploads
    assert chat.json["modelName"] == "imagine-video-gen" and chat.json["kind"] == "CONVERSATION_KIND_IMAGINE"
    assert chat.json["message"] == "make the sun rise --mode=custom"
    assert chat.json["mediaGenInput"] == {
        "imageToVideo": {
            "prompt": "make the sun rise",
            "aspectRatio": "16:9",
            "duration": 6,
            "resolutionName": "720p",
            "inputAssets": [file_id],
            "mode": "custom",
        }
    }
    assert chat.headers["referer"] == f"{fake.base_url}/imagine"
    assert sent_file(upload).data == TINY_JPEG


async def test_video_without_stream_and_only_the_first_image(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    reply = await client.chat.completions.create(model=MODEL, messages=_ask("make it rain", images=3))
    (src,) = VIDEO_TAG.findall(reply.choices[0].message.content)
    assert (await _get(gateway.url + src))[1] == TINY_MP4
    assert "Generating video: 100%" in reply.choices[0].message.reasoning_content
    assert len(_calls(fake, UPLOAD_V2_PATH)) == 1  # the reference also used only the first


@pytest.mark.parametrize("model", ["grok-imagine-video", MODEL])
async def test_without_an_image_it_makes_a_video_from_the_text(
    fake: FakeGrok, gateway: LiveGateway, client: Any, chat_transport: str, model: str
) -> None:
    await gateway.add_accounts("director")
    window = {"imagine-video": ModeQuota(remaining=5)}
    await gateway.services.store.update_account("director", AccountPatch(quotas=window))
    await gateway.services.reload(force=True)
    reply = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "a red fox runs"}])
    (src,) = VIDEO_TAG.findall(reply.choices[0].message.content)
    assert (await _get(gateway.url + src))[1] == TINY_MP4
    assert "Generating video: 100%" in reply.choices[0].message.reasoning_content
    (chat,) = fake.chat_calls()
    assert chat.json["mediaGenInput"] == {
        "textToVideo": {"prompt": "a red fox runs", "aspectRatio": "16:9", "duration": 6, "resolutionName": "720p"}
    }
    assert fake.mgw_sessions() == [] and _calls(fake, "/rest/app-chat/upload-file") == []
    (account,) = await gateway.services.store.list_accounts()
    assert account.quotas["imagine-video"].remaining == 4  # one query of the video window, taken and kept


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
    tr = AnswerReader(RuntimeSettings(), _NoMedia(), "token")
    assert await tr.read(VideoProgress(40)) == [ReasoningDelta("Generating video: 40%\n")]
    await tr.read(Text("I generated a video"))
    with pytest.raises(UpstreamError, match="before the video was ready"):
        tr.finish()

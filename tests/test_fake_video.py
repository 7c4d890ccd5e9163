"""The fake's Imagine video body: text or an uploaded image to video, the tier cap, refusals and the record of each
generation."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from grok2api.testing.fake_grok import CHAT_PATH, ERR_OUTDATED_CLIENT, TINY_JPEG, TINY_MP4, UPLOAD_PATH, FakeGrok

STATSIG = base64.b64encode(b"x1:TypeError: Cannot read properties of undefined (reading 'childNodes')").decode()
HEADERS = {"Content-Type": "application/json", "Referer": "https://grok.com/imagine", "x-statsig-id": STATSIG}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _body(prompt: str, *, duration: int = 6, image: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"prompt": prompt, "aspectRatio": "16:9", "duration": duration, "resolutionName": "720p"}
    media = {"textToVideo": spec}
    if image is not None:
        media = {"imageToVideo": {**spec, "inputAssets": [image], "mode": "custom"}}
    body: dict[str, Any] = {
        "temporary": True,
        "modelName": "imagine-video-gen",
        "message": f"{prompt} --mode=custom",
        "enableSideBySide": True,
        "mediaGenInput": media,
        "kind": "CONVERSATION_KIND_IMAGINE",
    }
    body.update(extra)
    return body


async def _post(http: aiohttp.ClientSession, fake: FakeGrok, body: Any, token: str = "tok-a") -> tuple[int, Any]:
    headers = HEADERS | {"Cookie": f"sso={token}"}
    async with http.post(fake.base_url + CHAT_PATH, json=body, headers=headers) as r:
        text = await r.text()
    if r.status != 200:
        return r.status, json.loads(text)
    return r.status, [json.loads(line) for line in text.splitlines() if line.strip()]


def _video_frames(lines: list[Any]) -> list[dict[str, Any]]:
    responses = [line["result"]["response"] for line in lines if "response" in line.get("result", {})]
    return [r["streamingVideoGenerationResponse"] for r in responses if "streamingVideoGenerationResponse" in r]


async def _asset(http: aiohttp.ClientSession, fake: FakeGrok, path: str, token: str) -> tuple[int, bytes]:
    async with http.get(f"{fake.assets_url}/{path}", headers={"Cookie": f"sso={token}"}) as r:
        return r.status, await r.read()


async def test_text_to_video_streams_progress_then_a_playable_mp4(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    status, lines = await _post(http, fake, _body("a sunrise"))
    assert status == 200
    frames = _video_frames(lines)
    assert [f["progress"] for f in frames] == [1, 5, 25, 50, 75, 95, 100]
    url, thumb = frames[-1]["videoUrl"], frames[-1]["thumbnailImageUrl"]
    assert url.endswith("/generated_video.mp4") and thumb.endswith("/preview_image.jpg")
    assert await _asset(http, fake, url, "tok-a") == (200, TINY_MP4)
    assert (await _asset(http, fake, url, "tok-b"))[0] == 403  # only the owner downloads it
    assert (await _asset(http, fake, thumb, "tok-a"))[1] == TINY_JPEG
    (video,) = fake.delivered_videos("tok-a")
    assert (video.order.prompt, video.order.duration, video.order.input_assets) == ("a sunrise", 6, [])
    assert fake.account("tok-a").remaining == 30  # no chat query: Imagine counts videos apart


async def test_image_to_video_needs_an_upload_of_the_same_account(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    upload = {"fileName": "a.jpg", "fileMimeType": "image/jpeg", "content": base64.b64encode(TINY_JPEG).decode()}
    async with http.post(fake.base_url + UPLOAD_PATH, json=upload, headers=HEADERS | {"Cookie": "sso=tok-a"}) as r:
        file_id = (await r.json())["fileMetadataId"]
    status, lines = await _post(http, fake, _body("move", image=file_id))
    assert status == 200 and _video_frames(lines)[-1]["videoUrl"]
    assert fake.videos[-1].order.input_assets == [file_id]
    status, error = await _post(http, fake, _body("move", image=file_id), token="tok-b")
    assert status == 400 and file_id in json.dumps(error)
    no_mode = _body("move", image=file_id)
    del no_mode["mediaGenInput"]["imageToVideo"]["mode"]
    assert (await _post(http, fake, no_mode))[0] == 400


async def test_the_2025_video_body_is_refused_as_outdated(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    old = {
        "temporary": True,
        "modelName": "grok-3",
        "message": "https://grok.com/imagine/abc12345  make it move --mode=custom",
        "fileAttachments": [],
        "toolOverrides": {"videoGen": True},
    }
    assert await _post(http, fake, old) == (400, ERR_OUTDATED_CLIENT)
    assert await _post(http, fake, _body("x", toolOverrides={"videoGen": True})) == (400, ERR_OUTDATED_CLIENT)
    assert fake.videos == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"kind": None}, "kind"),
        ({"modelName": "grok-3"}, "modelName"),
        ({"duration": 16}, "duration"),
        ({"duration": "6"}, "duration"),
        ({"aspectRatio": "4:1"}, "aspect ratio"),
        ({"resolutionName": "4k"}, "resolution"),
    ],
)
async def test_malformed_video_bodies_are_400(
    fake: FakeGrok, http: aiohttp.ClientSession, change: dict[str, Any], reason: str
) -> None:
    body = _body("x")
    for key, value in change.items():
        target = body if key in body else body["mediaGenInput"]["textToVideo"]
        target[key] = value
    status, error = await _post(http, fake, body)
    assert status == 400 and reason in json.dumps(error)


async def test_basic_accounts_get_six_seconds_at_most(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.add_account("basic-1", tier="basic")
    fake.add_account("super-1", tier="super")
    status, error = await _post(http, fake, _body("long", duration=10), token="basic-1")
    assert status == 429 and error["error"]["message"] == "Too many requests"
    assert (await _post(http, fake, _body("short", duration=6), token="basic-1"))[0] == 200
    assert (await _post(http, fake, _body("long", duration=15), token="super-1"))[0] == 200
    assert [(v.token, v.order.duration) for v in fake.videos] == [("basic-1", 6), ("super-1", 15)]


async def test_moderated_and_attachment_variants(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _post(http, fake, _body("sunrise [[video-moderated]]"))
    last = _video_frames(lines)[-1]
    assert last["moderated"] is True and "videoUrl" not in last
    assert fake.videos[-1].moderated
    _, lines = await _post(http, fake, _body("sunrise [[video-in-attachments]]"))
    assert all("videoUrl" not in f for f in _video_frames(lines))
    responses = [line["result"]["response"] for line in lines if "response" in line.get("result", {})]
    (model,) = [r["modelResponse"] for r in responses if "modelResponse" in r]
    assert (await _asset(http, fake, model["fileAttachments"][0], "tok-a"))[0] == 200


async def test_a_client_that_leaves_mid_video_never_gets_it(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.push_fault("stall-mid:30")  # strikes at 25 %
    headers = HEADERS | {"Cookie": "sso=tok-a"}
    async with http.post(fake.base_url + CHAT_PATH, json=_body("slow"), headers=headers) as r:
        assert r.status == 200
        seen = b""
        while b'"progress":25' not in seen:
            chunk = await asyncio.wait_for(r.content.readany(), 5)
            assert chunk, "the stream ended before 25 %"
            seen += chunk
    for _ in range(100):
        if fake.account("tok-a").in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert len(fake.videos) == 1 and fake.delivered_videos() == []
    await _post(http, fake, _body("fast"))
    assert [v.order.prompt for v in fake.delivered_videos()] == ["fast"]

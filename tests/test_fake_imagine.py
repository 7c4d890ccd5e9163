"""The fake grok.com's Imagine side: upload v2, the Imagine WebSocket and the image edit on conversations/new, as a
client sees them on the wire."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from grok2api.testing.fake_grok import (
    CHAT_PATH,
    ERR_OUTDATED_CLIENT,
    IMAGINE_PATH,
    TINY_JPEG,
    UPLOAD_V2_PATH,
    FakeGrok,
)
from grok2api.testing.fake_imagine_images import IMAGE_DATA_URL
from grok2api.testing.fake_upload import DIMENSIONS_INSUFFICIENT, IMAGINE_FILE_SOURCE, sent_file, solid_png

Json = dict[str, Any]
STATSIG = base64.b64encode(b"x1:TypeError: Cannot read properties of undefined (reading 'childNodes')").decode()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"sso={token}; sso-rw={token}"}


def imagine_url(fake: FakeGrok) -> str:
    return f"ws://{fake.host}:{fake.port}{IMAGINE_PATH}"


def item(content: Json) -> Json:
    return {"type": "conversation.item.create", "timestamp": 1, "item": {"type": "message", "content": [content]}}


def ask(prompt: str, **properties: Any) -> Json:
    props = {"aspect_ratio": "1:1", "enable_pro": False, "num_generations": 4, **properties}
    return item({"type": "input_text", "requestId": "img_0123", "text": prompt, "properties": props})


async def generate(
    fake: FakeGrok, http: aiohttp.ClientSession, prompt: str, token: str = "tok-i", reset: bool = True, **props: Any
) -> list[Json]:
    """Every frame of one request, until the socket goes quiet (the fake keeps it open for the next request)."""
    headers = {**cookie(token), "Origin": fake.base_url}
    async with http.ws_connect(imagine_url(fake), headers=headers) as ws:
        if reset:
            await ws.send_json(item({"type": "reset"}))
        await ws.send_json(ask(prompt, **props))
        frames: list[Json] = []
        while True:
            try:
                msg = await ws.receive(timeout=0.5)
            except TimeoutError:
                return frames
            if msg.type != aiohttp.WSMsgType.TEXT:
                return frames
            frames.append(json.loads(msg.data))


async def fetch(http: aiohttp.ClientSession, fake: FakeGrok, path: str, token: str) -> tuple[int, bytes]:
    async with http.get(f"{fake.assets_url}/{path}", headers=cookie(token)) as resp:
        return resp.status, await resp.read()


# ---- the Imagine WebSocket ----------------------------------------------------------------------------------


async def test_a_generation_plays_previews_finals_and_verdicts(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    frames = await generate(fake, http, "a red fox", num_generations=4)
    images = [f for f in frames if f["type"] == "image"]
    verdicts = [f for f in frames if f["type"] == "json"]
    assert [f["percentage_complete"] for f in images] == [30] * 4 + [60] * 4 + [100] * 4
    assert [v["current_status"] for v in verdicts] == ["completed"] * 4 and not any(v["moderated"] for v in verdicts)
    ids = [f["image_id"] for f in images[:4]]
    assert len(set(ids)) == 4 and [f["image_id"] for f in images[8:]] == [v["image_id"] for v in verdicts] == ids
    for frame in images:
        assert base64.b64decode(frame["blob"]) == TINY_JPEG
        assert frame["url"].startswith(f"users/{fake.user_id('tok-i')}/generated/")
        assert ("-part-0/" in frame["url"]) == (frame["percentage_complete"] < 100)
    # Every picture is a real JPEG asset of the account, and of no other.
    assert await fetch(http, fake, verdicts[0]["url"], "tok-i") == (200, TINY_JPEG)
    assert (await fetch(http, fake, images[0]["url"], "tok-i"))[0] == 200
    assert (await fetch(http, fake, verdicts[0]["url"], "tok-other"))[0] == 403
    (session,) = fake.imagine_sessions("tok-i")
    assert session.properties["num_generations"] == 4 and session.request is not None
    assert session.request["text"] == "a red fox" and session.closed
    assert [m["item"]["content"][0]["type"] for m in session.received] == ["reset", "input_text"]
    async with http.get(f"{fake.base_url}/__fake/imagine") as resp:  # the same, for a fake in another process
        (listed,) = await resp.json()
    assert listed["request"]["text"] == "a red fox" and len(listed["sent"]) == len(frames)


async def test_moderation_and_final_styles(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    frames = await generate(fake, http, "a cat [[moderate:1,3]] [[finals:url]]")
    finals = [f for f in frames if f["type"] == "image" and f["percentage_complete"] == 100]
    verdicts = [f for f in frames if f["type"] == "json"]
    assert [v["moderated"] for v in verdicts] == [False, True, False, True]
    assert [v["url"] for v in verdicts if v["moderated"]] == ["", ""]
    assert len(finals) == 2 and not any("blob" in f for f in finals)  # no picture of a moderated image at all
    frames = await generate(fake, http, "a cat [[finals:data-url]] [[moderate]]", num_generations=8)
    assert [f for f in frames if f["type"] == "image" and f["percentage_complete"] == 100] == []
    assert sum(f["type"] == "json" and f["moderated"] for f in frames) == 8
    frames = await generate(fake, http, "a cat [[finals:data-url]]")
    finals = [f for f in frames if f["type"] == "image" and f["percentage_complete"] == 100]
    assert {f["blob"] for f in finals} == {IMAGE_DATA_URL}


@pytest.mark.parametrize(
    ("prompt", "props", "reset", "message"),
    [
        ("x", {}, False, "not reset"),
        ("x", {"num_generations": 5}, True, "num_generations must be one of"),
        ("x", {"aspect_ratio": "7:5"}, True, "Unsupported aspect_ratio"),
        ("x", {"enable_pro": "yes"}, True, "enable_pro"),
        (" ", {}, True, "text is required"),
    ],
)
async def test_what_grok_refuses_in_a_request(
    fake: FakeGrok, http: aiohttp.ClientSession, prompt: str, props: Json, reset: bool, message: str
) -> None:
    (frame,) = await generate(fake, http, prompt, reset=reset, **props)
    assert frame["type"] == "error" and message in frame["message"]


async def test_error_frames_and_cuts(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    (usage,) = await generate(fake, http, "x [[fault:usage]]")
    assert usage == {"type": "error", "code": "resource_exhausted", "message": usage["message"]}
    assert "usage limit" in usage["message"]
    fake.push_fault("imagine-antibot", token="tok-i")
    assert (await generate(fake, http, "x"))[0]["code"] == "anti_bot"
    frames = await generate(fake, http, "x [[fault:error]]")
    assert [f["type"] for f in frames] == ["image"] * 8 + ["error"]
    fake.push_fault("imagine-close")
    assert await generate(fake, http, "x") == []


@pytest.mark.parametrize(
    ("fault", "status", "marker"),
    [
        ("imagine-401", 401, "invalid-credentials"),
        ("imagine-403-blocked", 403, "blocked-user"),
        ("imagine-429", 429, ""),
    ],
)
async def test_queued_handshake_refusals_read_back_by_a_plain_get(
    fake: FakeGrok, http: aiohttp.ClientSession, fault: str, status: int, marker: str
) -> None:
    fake.push_fault(fault, token="tok-r")
    headers = {**cookie("tok-r"), "Origin": fake.base_url}
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(imagine_url(fake), headers=headers)
    assert info.value.status == status
    async with http.get(fake.base_url + IMAGINE_PATH, headers=headers) as resp:
        assert resp.status == status and marker in await resp.text()
    assert [s.refused for s in fake.imagine_sessions("tok-r")] == [status]


async def test_the_handshake_wants_an_account_and_grok_as_origin(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    for headers, status in (({"Origin": fake.base_url}, 401), ({**cookie("tok-o"), "Origin": "https://evil"}, 403)):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(imagine_url(fake), headers=headers)
        assert info.value.status == status
    fake.block("tok-b")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(imagine_url(fake), headers={**cookie("tok-b"), "Origin": "https://grok.com"})
    assert info.value.status == 403


# ---- upload v2 -----------------------------------------------------------------------------------------------


async def upload(
    fake: FakeGrok, http: aiohttp.ClientSession, data: bytes, *, source: str | None = None, token: str = "tok-u"
) -> tuple[int, Json]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="pic.png", content_type="image/png")
    if source is not None:
        form.add_field("file_source", source)
    async with http.post(fake.base_url + UPLOAD_V2_PATH, data=form, headers=cookie(token)) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if resp.status == 200 else {"text": text}


async def test_upload_v2_keeps_the_file_and_answers_its_metadata(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    status, body = await upload(fake, http, TINY_JPEG, source=IMAGINE_FILE_SOURCE)
    assert status == 200 and body["terminalError"] is None and body["uploadId"]
    meta = body["fileMetadata"]
    assert set(meta) == {"fileMetadataId", "fileId", "fileUri"}
    assert fake.account("tok-u").uploads[meta["fileMetadataId"]] == ("image/png", TINY_JPEG)
    assert await fetch(http, fake, meta["fileUri"], "tok-u") == (200, TINY_JPEG)
    (call,) = [r for r in fake.requests if r.path == UPLOAD_V2_PATH]
    sent = sent_file(call)
    assert (sent.filename, sent.content_type, sent.data, sent.source) == (
        "pic.png",
        "image/png",
        TINY_JPEG,
        IMAGINE_FILE_SOURCE,
    )
    assert "x-statsig-id" not in call.headers  # not a /rest/ call: no statsig is asked for


async def test_upload_v2_refuses_tiny_images_in_a_200(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    for width, height in ((1, 1), (63, 200)):
        status, body = await upload(fake, http, solid_png(width, height))
        assert status == 200 and body["fileMetadata"] is None
        assert body["terminalError"]["message"] == DIMENSIONS_INSUFFICIENT
    assert fake.account("tok-u").uploads == {}
    status, body = await upload(fake, http, solid_png(64, 64))
    assert status == 200 and body["terminalError"] is None
    status, body = await upload(fake, http, b"plain text is a file too")
    assert status == 200 and body["terminalError"] is None


async def test_upload_v2_faults_and_bad_bodies(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    for fault, status in (("uploadv2-404", 404), ("uploadv2-405", 405), ("uploadv2-501", 501), ("uploadv2-500", 500)):
        fake.push_fault(fault)
        assert (await upload(fake, http, TINY_JPEG))[0] == status
    async with http.post(fake.base_url + UPLOAD_V2_PATH, json={"fileName": "a"}, headers=cookie("tok-u")) as resp:
        assert resp.status == 400
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x.bin")
    async with http.post(fake.base_url + UPLOAD_V2_PATH, data=form, headers=cookie("tok-u")) as resp:
        assert resp.status == 400 and "'file'" in await resp.text()
    async with http.post(fake.base_url + UPLOAD_V2_PATH, data=aiohttp.FormData({"a": "b"})) as resp:
        assert resp.status == 401


# ---- the image edit ------------------------------------------------------------------------------------------


def edit_body(assets: list[str], prompt: str = "make it night", **extra: Any) -> Json:
    return {
        "modelName": "imagine-image-edit",
        "message": prompt,
        "enableImageStreaming": True,
        "enableSideBySide": True,
        "sendFinalMetadata": True,
        "mediaGenInput": {"imageToImage": {"prompt": prompt, "inputAssets": assets}},
        **extra,
    }


async def post_chat(fake: FakeGrok, http: aiohttp.ClientSession, body: Json, token: str = "tok-u") -> tuple[int, str]:
    headers = {**cookie(token), "x-statsig-id": STATSIG, "Referer": f"{fake.base_url}/imagine"}
    async with http.post(fake.base_url + CHAT_PATH, json=body, headers=headers) as resp:
        return resp.status, await resp.text()


def streaming_frames(text: str) -> list[Json]:
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    responses = [line["result"].get("response", {}) for line in lines]
    return [r["streamingImageGenerationResponse"] for r in responses if "streamingImageGenerationResponse" in r]


async def test_an_edit_answers_with_edited_images(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, uploaded = await upload(fake, http, TINY_JPEG, source=IMAGINE_FILE_SOURCE)
    asset = uploaded["fileMetadata"]["fileMetadataId"]
    status, text = await post_chat(fake, http, edit_body([asset], "night [[moderate:1]]"))
    assert status == 200
    frames = streaming_frames(text)
    assert [(f["progress"], f["isFinal"], f["moderated"]) for f in frames] == [
        (50, False, False),
        (50, False, True),
        (100, True, False),
        (100, True, True),
    ]
    assert "imageUrl" not in frames[1] and "imageUrl" not in frames[3]
    assert frames[0]["imageUrl"].endswith("-part-0/image.jpg") and frames[0]["imageId"] == frames[2]["imageId"]
    final = json.loads(text.splitlines()[-1])["result"]["response"]["modelResponse"]
    assert final["generatedImageUrls"] == [frames[2]["imageUrl"]]
    assert await fetch(http, fake, frames[2]["imageUrl"], "tok-u") == (200, TINY_JPEG)
    _, single = await post_chat(fake, http, edit_body([asset], enableSideBySide=False))
    assert len(streaming_frames(single)) == 2


async def test_old_edit_shapes_and_unknown_assets_are_refused(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    override = {"modelConfigOverride": {"modelMap": {"imageEditModel": "imagine"}}}
    old = {"modelName": "imagine-image-edit", "message": "x", "responseMetadata": override}
    for body in (old, {**edit_body(["f"]), "modelName": "grok-3"}):
        status, text = await post_chat(fake, http, body)
        assert (status, json.loads(text)) == (400, ERR_OUTDATED_CLIENT)
    status, text = await post_chat(fake, http, edit_body(["never-uploaded"]))
    assert status == 400 and "File never-uploaded not found" in text
    status, _ = await post_chat(fake, http, edit_body([]))
    assert status == 400
    fake.push_fault("429")
    assert (await post_chat(fake, http, edit_body(["f"])))[0] == 429

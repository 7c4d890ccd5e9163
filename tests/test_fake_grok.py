"""The fake grok.com behaves like the wire protocol says: traces, quota, faults, assets and control endpoints."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from grok2api.testing.fake_grok import (
    CHAT_PATH,
    LIMITS_PATH,
    MODES_PATH,
    POST_PATH,
    UPLOAD_PATH,
    FakeGrok,
    serve_forever,
    statsig_valid,
)

STATSIG = base64.b64encode(b"e:TypeError: Cannot read properties of undefined (reading 'childNodes')").decode()
JPEG_MAGIC = b"\xff\xd8"

Lines = list[Any]


# ``fake`` (a FakeGrok on a loopback port) comes from harness.py.


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _headers(token: str | None = "tok-a", *, extra_cookie: str = "", statsig: str | None = STATSIG) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Cookie"] = f"sso-rw={token};sso={token}{extra_cookie}"
    elif extra_cookie:
        headers["Cookie"] = extra_cookie.lstrip(";")
    if statsig is not None:
        headers["x-statsig-id"] = statsig
    return headers


def _chat_body(message: str, **overrides: Any) -> dict[str, Any]:
    """The modeId body of the 2026 protocol."""
    body: dict[str, Any] = {
        "temporary": True,
        "modeId": "fast",
        "message": message,
        "fileAttachments": [],
        "imageAttachments": [],
        "disableSearch": False,
        "enableImageGeneration": True,
        "enableImageStreaming": True,
        "imageGenerationCount": 2,
        "enableSideBySide": True,
        "disableMemory": True,
        "sendFinalMetadata": True,
        "responseMetadata": {},
    }
    body.update(overrides)
    return body


def _parse(text: str) -> Lines:
    out: Lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("data: "):
            line = line[len("data: ") :]
        if line and line != "[DONE]":
            out.append(json.loads(line))
    return out


async def _chat(
    http: aiohttp.ClientSession, fake: FakeGrok, message: str, token: str = "tok-a", **overrides: Any
) -> tuple[int, Lines]:
    async with http.post(
        fake.base_url + CHAT_PATH, json=_chat_body(message, **overrides), headers=_headers(token)
    ) as r:
        text = await r.text()
        if r.status != 200:
            return r.status, [text]
        return r.status, _parse(text)


def _responses(lines: Lines) -> list[dict[str, Any]]:
    return [line["result"]["response"] for line in lines if "response" in line.get("result", {})]


def _final_tokens(lines: Lines) -> list[str]:
    return [
        r["token"]
        for r in _responses(lines)
        if "token" in r and r.get("messageTag") == "final" and not r["isThinking"] and isinstance(r["token"], str)
    ]


def _frames(lines: Lines, key: str) -> list[dict[str, Any]]:
    return [r[key] for r in _responses(lines) if key in r]


def _model_response(lines: Lines) -> dict[str, Any]:
    found = [r["modelResponse"] for r in _responses(lines) if "modelResponse" in r]
    assert len(found) == 1
    result: dict[str, Any] = found[0]
    return result


async def _get_asset(http: aiohttp.ClientSession, fake: FakeGrok, path: str, token: str | None) -> tuple[int, bytes]:
    headers = {"Cookie": f"sso={token}"} if token else {}
    async with http.get(f"{fake.assets_url}/{path}", headers=headers) as r:
        return r.status, await r.read()


async def _post_json(
    http: aiohttp.ClientSession, url: str, body: Any, token: str = "tok-a"
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(url, json=body, headers=_headers(token)) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text), r
        except ValueError:
            return r.status, text, r


# ------------------------------------------------------------------------------------------------ traces


async def test_plain_trace_order_and_message(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("hi there"), headers=_headers()) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.headers.get("Transfer-Encoding") == "chunked"
        lines = _parse(await r.text())
    assert "conversationId" in lines[0]["result"]["conversation"]
    user = lines[1]["result"]["response"]["userResponse"]
    assert user["model"] == "fast" and user["message"] == "hi there"
    tokens = _final_tokens(lines)
    assert len(tokens) > 3
    model = _model_response(lines)
    assert model["message"] == "".join(tokens) == "Hello! You said: hi there"
    assert model["model"] == "fast" and model["generatedImageUrls"] == []
    assert lines[-1]["result"]["response"]["finalMetadata"] is not None
    assert lines[-1]["result"]["response"]["isSoftStop"] is True
    kinds = [next(iter(line["result"])) for line in lines]
    assert kinds[0] == "conversation" and kinds.count("title") == 0


async def test_title_line_when_not_temporary(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "name this chat please", temporary=False)
    assert lines[-1] == {"result": {"title": {"newTitle": "name this chat please"}}}


async def test_tokens_marker_gives_exact_count(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "bench [[tokens:5]]")
    assert _final_tokens(lines) == [f"tok{i} " for i in range(5)]
    assert _model_response(lines)["message"] == "tok0 tok1 tok2 tok3 tok4 "


async def test_thinking_trace(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "why? [[think]]", modeId="auto")
    tokens = [r for r in _responses(lines) if "token" in r]
    assert tokens[0]["messageTag"] == "header" and tokens[0]["isThinking"] is True
    thinking = [t for t in tokens if t["isThinking"]]
    assert {t["messageTag"] for t in thinking} == {"header", "assistant"}
    first_final = next(i for i, t in enumerate(tokens) if t["messageTag"] == "final")
    assert all(t["isThinking"] for t in tokens[:first_final])
    assert not any(t["isThinking"] for t in tokens[first_final:])
    assert _model_response(lines)["message"] == "".join(_final_tokens(lines))


async def test_search_trace(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "rust book [[think]][[search]]")
    responses = _responses(lines)
    card = next(r for r in responses if r.get("messageTag") == "tool_usage_card" and "token" in r)
    assert card["toolUsageCardId"] == "t1" and card["isThinking"] is True
    assert card["token"].startswith("<xai:tool_usage_card>") and "web_search" in card["token"]
    results = next(r for r in responses if "webSearchResults" in r)
    assert results["toolUsageCardId"] == "t1" and results["isThinking"] is True
    items = results["webSearchResults"]["results"]
    assert len(items) == 2 and any("\n" in item["preview"] for item in items)
    assert responses.index(card) < responses.index(results)


async def test_cite_and_artifact_tokens(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "cite it [[cite]][[artifact]]")
    responses = _responses(lines)
    card_index = next(i for i, r in enumerate(responses) if "cardAttachment" in r)
    card = json.loads(responses[card_index]["cardAttachment"]["jsonData"])
    assert card["type"] == "render_inline_citation"
    assert "<grok:render" in responses[card_index + 1]["token"]
    message = _model_response(lines)["message"]
    assert "<grok:render" in message and '<xaiArtifact contentType="text/python">print(1)</xaiArtifact>' in message
    assert message == "".join(_final_tokens(lines))


async def test_content_edge_cases(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    marks = "[[emoji]][[list-token]][[dict-token]][[empty-token]][[late-think]][[header]][[no-model]]"
    _, lines = await _chat(http, fake, "edge " + marks)
    tokens = [r["token"] for r in _responses(lines) if "token" in r]
    assert ["a", "list", "token"] in tokens and any(isinstance(t, dict) for t in tokens) and "" in tokens
    assert "👨\u200d" in tokens and "👩\u200d👧" in tokens
    responses = [r for r in _responses(lines) if "token" in r]
    first_final = next(i for i, r in enumerate(responses) if r["messageTag"] == "final")
    assert any(r["isThinking"] for r in responses[first_final:])  # late thinking
    assert any(r["messageTag"] == "header" for r in responses)
    model = _model_response(lines)
    assert "model" not in model and "model" not in lines[1]["result"]["response"]["userResponse"]
    assert model["message"] == "".join(_final_tokens(lines))


async def test_unclosed_think_ends_while_thinking(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "hmm [[unclosed-think]]")
    responses = _responses(lines)
    assert responses[-1]["isThinking"] is True
    assert not any("modelResponse" in r for r in responses)


async def test_sse_framing(http: aiohttp.ClientSession) -> None:
    async with FakeGrok(framing="sse") as fake:
        async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("hi"), headers=_headers()) as r:
            text = await r.text()
    events = [line for line in text.split("\n") if line]
    assert all(line.startswith("data: ") for line in events) and events[-1] == "data: [DONE]"
    assert _model_response(_parse(text))["message"] == "Hello! You said: hi"


async def test_sse_marker(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x [[sse]]"), headers=_headers()) as r:
        text = await r.text()
    assert text.startswith("data: {") and text.rstrip().endswith("data: [DONE]")


async def test_deterministic_ids(http: aiohttp.ClientSession) -> None:
    ids = []
    for _ in range(2):
        async with FakeGrok(seed=7) as fake:
            _, lines = await _chat(http, fake, "hi")
            ids.append(lines[0]["result"]["conversation"]["conversationId"])
    assert ids[0] == ids[1]


# ------------------------------------------------------------------------------------------------ media


async def test_draw_and_asset_download(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "please draw a cat")
    responses = _responses(lines)
    assert any("imageAttachmentInfo" in r for r in responses)
    progress = [r["streamingImageGenerationResponse"] for r in responses if "streamingImageGenerationResponse" in r]
    assert sorted((p["imageIndex"], p["progress"]) for p in progress) == [(i, p) for i in (0, 1) for p in (0, 50, 100)]
    partial = next(p["imageUrl"] for p in progress if p["progress"] == 50)
    assert "-part-0/image.jpg" in partial
    urls = _model_response(lines)["generatedImageUrls"]
    uid = fake.account("tok-a").user_id
    assert len(urls) == 2 and all(u.startswith(f"users/{uid}/generated/") and u.endswith("/image.jpg") for u in urls)
    for path in (*urls, partial):
        status, data = await _get_asset(http, fake, path, "tok-a")
        assert status == 200 and data.startswith(JPEG_MAGIC) and data.endswith(b"\xff\xd9")
    assert (await _get_asset(http, fake, urls[0], None))[0] == 403
    assert (await _get_asset(http, fake, urls[0], "tok-other"))[0] == 403
    assert (await _get_asset(http, fake, f"users/{uid}/generated/nope/image.jpg", "tok-a"))[0] == 404
    assert fake.account("tok-a").remaining == 30 - 1  # one query of the mode, images included


async def test_draw_moderated_and_count(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "x [[draw-moderated]]", imageGenerationCount=3)
    progress = _frames(lines, "streamingImageGenerationResponse")
    moderated = [p for p in progress if p["moderated"]]
    assert moderated and all("imageUrl" not in p for p in moderated)
    assert len(_model_response(lines)["generatedImageUrls"]) == 2


async def test_upload_then_content_and_attachment(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    payload = {"fileName": "image.png", "fileMimeType": "image/png", "content": base64.b64encode(b"PNGDATA").decode()}
    headers = _headers() | {"Content-Type": "text/plain;charset=UTF-8"}
    async with http.post(fake.base_url + UPLOAD_PATH, data=json.dumps(payload), headers=headers) as r:
        assert r.status == 200
        meta = await r.json()
    uid = fake.account("tok-a").user_id
    assert meta["fileUri"] == f"users/{uid}/{meta['fileMetadataId']}/content" and meta["fileMimeType"] == "image/png"
    async with http.get(f"{fake.assets_url}/{meta['fileUri']}", headers={"Cookie": "sso=tok-a"}) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png" and await r.read() == b"PNGDATA"
    status, _ = await _chat(http, fake, "what is this", fileAttachments=[meta["fileMetadataId"]])
    assert status == 200
    status, _ = await _chat(http, fake, "what is this", fileAttachments=["missing-id"])
    assert status == 400
    bad = payload | {"content": "not base64!!"}
    assert (await _post_json(http, fake.base_url + UPLOAD_PATH, bad))[0] == 400


async def test_media_post_both_spellings(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    url = fake.base_url + POST_PATH
    snake = {"media_url": "https://assets.grok.com/users/u/f/content", "media_type": "MEDIA_POST_TYPE_IMAGE"}
    status, body, _ = await _post_json(http, url, snake)
    assert status == 200 and body["post"]["mediaUrl"] == snake["media_url"]
    assert body["post"]["id"] in fake.posts
    camel = {"mediaType": "MEDIA_POST_TYPE_VIDEO", "prompt": "a sunrise"}
    status, body, _ = await _post_json(http, url, camel)
    assert status == 200 and body["post"]["mediaType"] == "MEDIA_POST_TYPE_VIDEO"
    assert (await _post_json(http, url, {}))[0] == 400


async def test_asset_faults(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "[[draw]]")
    path = _model_response(lines)["generatedImageUrls"][0]
    for fault, status in (("asset-404", 404), ("asset-500", 500), ("asset-403", 403)):
        fake.push_fault(fault)
        assert (await _get_asset(http, fake, path, "tok-a"))[0] == status
    fake.push_fault("asset-redirect")
    async with http.get(f"{fake.assets_url}/{path}", headers={"Cookie": "sso=tok-a"}) as r:
        assert r.status == 200 and len(r.history) == 1 and r.history[0].status == 302
        assert (await r.read()).startswith(JPEG_MAGIC)
    fake.push_fault("asset-truncated")
    with pytest.raises(aiohttp.ClientPayloadError):
        await _get_asset(http, fake, path, "tok-a")
    fake.push_fault("asset-slow:0.2")
    started = time.monotonic()
    assert (await _get_asset(http, fake, path, "tok-a"))[0] == 200
    assert time.monotonic() - started >= 0.2


async def test_side_endpoint_faults(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    upload = {"fileName": "a.txt", "fileMimeType": "text/plain", "content": "aGk="}
    for fault, status in (("upload-401", 401), ("upload-413", 413), ("upload-500", 500)):
        fake.push_fault(fault)
        assert (await _post_json(http, fake.base_url + UPLOAD_PATH, upload))[0] == status
    fake.push_fault("post-500")
    assert (await _post_json(http, fake.base_url + POST_PATH, {"mediaUrl": "x"}))[0] == 500
    for fault, status in (("limits-401", 401), ("limits-403", 403), ("limits-429", 429), ("limits-500", 500)):
        fake.push_fault(fault)
        assert (await _post_json(http, fake.base_url + LIMITS_PATH, {"modelName": "fast"}))[0] == status
    fake.push_fault("limits-missing")
    status, body, _ = await _post_json(http, fake.base_url + LIMITS_PATH, {"modelName": "fast"})
    assert status == 200 and "totalQueries" not in body and "windowSizeSeconds" not in body
    assert body["remainingQueries"] == 30
    with pytest.raises(ValueError):
        fake.push_fault("upload-teapot")


# ------------------------------------------------------------------------------------------------ quota


async def test_rate_limits_per_mode_and_tier(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    url = fake.base_url + LIMITS_PATH
    expected = {
        "tok-basic": {"fast": 30, "auto": 20, "expert": 0, "heavy": 0},
        "super-1": {"fast": 140, "auto": 50, "expert": 50, "heavy": 0},
        "heavy-1": {"fast": 400, "auto": 150, "expert": 150, "heavy": 20},
    }
    for token, totals in expected.items():
        for mode, total in totals.items():
            status, body, _ = await _post_json(http, url, {"modelName": mode}, token=token)
            assert status == 200 and body == {
                "windowSizeSeconds": 7200,
                "remainingQueries": total,
                "totalQueries": total,
                "lowEffortRateLimits": None,
                "highEffortRateLimits": None,
            }, (token, mode)
    await _chat(http, fake, "hi", token="super-1")
    await _chat(http, fake, "hi", token="super-1", modeId="expert")
    await _chat(http, fake, "hi", token="super-1", modeId="expert")
    _, fast, _ = await _post_json(http, url, {"modelName": "fast"}, token="super-1")
    _, expert, _ = await _post_json(http, url, {"modelName": "expert"}, token="super-1")
    assert (fast["remainingQueries"], expert["remainingQueries"]) == (139, 48)
    for bad in ({"modelName": "grok-3"}, {"requestKind": "DEFAULT"}, {"modelName": 3}):
        assert (await _post_json(http, url, bad))[0] == 400


async def test_modes_catalogue(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    url = fake.base_url + MODES_PATH

    async def modes(token: str = "tok-a") -> dict[str, dict[str, Any]]:
        status, body, _ = await _post_json(http, url, {"locale": "en"}, token=token)
        assert status == 200 and body["defaultModeId"] == "auto"
        return {mode["id"]: mode for mode in body["modes"]}

    basic = await modes()
    assert list(basic) == ["auto", "fast", "expert", "heavy"]
    assert set(basic["fast"]) == {"id", "title", "description", "availability", "iconHint", "tags"}
    assert {k: v["availability"] for k, v in basic.items()} == {
        "auto": {"available": {}},
        "fast": {"available": {}},
        "expert": {"unavailable": {}},
        "heavy": {"unavailable": {}},
    }
    assert all("available" in m["availability"] for m in (await modes("heavy-1")).values())
    fake.add_mode("grok-420-computer-use-sa", title="Grok 4.3 beta")
    fake.set_mode_available("fast", False)
    fake.set_mode_available("heavy", True)
    listed = await modes()
    beta = listed["grok-420-computer-use-sa"]
    assert beta["title"] == "Grok 4.3 beta" and beta["badgeText"] == "Beta" and "available" in beta["availability"]
    assert "unavailable" in listed["fast"]["availability"] and "available" in listed["heavy"]["availability"]
    _, window, _ = await _post_json(http, fake.base_url + LIMITS_PATH, {"modelName": "grok-420-computer-use-sa"})
    assert window["totalQueries"] == 20
    fake.push_fault("modes-500")
    assert (await _post_json(http, url, {"locale": "en"}))[0] == 500
    async with http.post(url, json={"locale": "en"}, headers=_headers(statsig=None)) as r:
        assert r.status == 403


async def test_quota_exhaustion_and_window_reset(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    account = fake.add_account("tok-q", quota=1)
    assert (await _chat(http, fake, "one", token="tok-q"))[0] == 200
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("two"), headers=_headers("tok-q")) as r:
        assert r.status == 429
        assert 0 < int(r.headers["Retry-After"]) <= 7200
        assert (await r.json())["error"]["code"] == 8
    _, limits, _ = await _post_json(http, fake.base_url + LIMITS_PATH, {"modelName": "fast"}, token="tok-q")
    assert limits["remainingQueries"] == 0 and 0 < limits["waitTimeSeconds"] <= 7200
    _, auto, _ = await _post_json(http, fake.base_url + LIMITS_PATH, {"modelName": "auto"}, token="tok-q")
    assert auto["remainingQueries"] == 20 and "waitTimeSeconds" not in auto  # windows are per mode
    _, heavy, _ = await _post_json(http, fake.base_url + LIMITS_PATH, {"modelName": "heavy"}, token="tok-q")
    assert heavy["totalQueries"] == 0 and "waitTimeSeconds" not in heavy  # nothing to wait for
    assert (await _chat(http, fake, "two", token="tok-q", modeId="auto"))[0] == 200
    account.end_windows()
    assert (await _chat(http, fake, "three", token="tok-q"))[0] == 200


async def test_mode_tier_gating(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    status, body = await _chat(http, fake, "x", token="tok-basic", modeId="heavy")
    assert status == 403 and json.loads(body[0])["error"]["code"] == 7
    assert (await _chat(http, fake, "x", token="tok-basic", modeId="expert"))[0] == 403
    assert fake.add_account("heavy-1").tier == "basic"  # explicit accounts keep the tier they are given
    assert (await _chat(http, fake, "x", token="heavy-2", modeId="heavy"))[0] == 200
    assert fake.account("heavy-2").tier == "heavy" and fake.account("heavy-2").heavy_remaining == 19
    fake.set_tier("tok-basic", "heavy")
    assert (await _chat(http, fake, "x", token="tok-basic", modeId="heavy"))[0] == 200
    fake.set_mode_available("heavy", False)
    assert (await _chat(http, fake, "x", token="tok-basic", modeId="heavy"))[0] == 403
    status, body = await _chat(http, fake, "x", modeId="grok-9")
    assert status == 400


async def test_legacy_chat_body_refused(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    outdated = {"error": {"code": 3, "message": "Invalid request. Please update your client"}}
    for legacy in (
        {"modelName": "grok-3", "modelMode": "MODEL_MODE_FAST"},
        {"modelName": "grok-4"},
        {"modelMode": "MODEL_MODE_EXPERT", "modeId": "expert"},
    ):
        body = _chat_body("x", **legacy)
        if "modeId" not in legacy:
            del body["modeId"]
        async with http.post(fake.base_url + CHAT_PATH, json=body, headers=_headers()) as r:
            assert r.status == 400 and await r.json() == outdated
    no_mode = _chat_body("x")
    del no_mode["modeId"]
    assert (await _post_json(http, fake.base_url + CHAT_PATH, no_mode))[0] == 400
    # Imagine media bodies still name a model (a video costs no chat query).
    video = {"prompt": "sea", "aspectRatio": "16:9", "duration": 6, "resolutionName": "720p"}
    media: dict[str, Any] = {
        "modelName": "imagine-video-gen",
        "mediaGenInput": {"textToVideo": video},
        "kind": "CONVERSATION_KIND_IMAGINE",
    }
    assert (await _chat(http, fake, "sea", **media))[0] == 200
    assert fake.account("tok-a").remaining == 30


async def test_concurrency_cap(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.max_concurrency_per_account = 1
    first = asyncio.create_task(_chat(http, fake, "slow [[fault:stall-first:0.3]]"))
    for _ in range(100):
        if fake.chat_calls() and fake.account("tok-a").in_flight == 1:
            break
        await asyncio.sleep(0.01)
    assert (await _chat(http, fake, "second"))[0] == 429
    assert (await first)[0] == 200
    assert fake.account("tok-a").in_flight == 0


# ------------------------------------------------------------------------------------------------ auth


async def test_token_prefixes_and_auth(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    status, body = await _chat(http, fake, "x", token="invalid-1")
    assert status == 401 and json.loads(body[0])["error"]["code"] == 16
    status, body = await _chat(http, fake, "x", token="blocked-1")
    assert status == 403 and "blocked-user" in json.loads(body[0])["error"]["message"]
    assert (await _chat(http, fake, "x", token="super-abc"))[0] == 200
    assert fake.account("super-abc").tier == "super" and fake.account("super-abc").total == 140
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=_headers(None)) as r:
        assert r.status == 401
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=_headers(statsig=None)) as r:
        assert r.status == 403 and (await r.json())["error"]["message"] == "Request rejected by anti-bot rules."
    # Cookie order and spacing do not matter, and sso-rw alone is enough.
    for cookie in ("sso=tok-c; sso-rw=tok-c", "cf_clearance=z; sso-rw=tok-c"):
        headers = _headers(None) | {"Cookie": cookie}
        async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=headers) as r:
            assert r.status == 200
    fake.add_account("gone", state="invalid")
    assert (await _chat(http, fake, "x", token="gone"))[0] == 401


async def test_reject_unknown_tokens(http: aiohttp.ClientSession) -> None:
    async with FakeGrok(accept_unknown=False) as fake:
        assert (await _chat(http, fake, "x", token="stranger"))[0] == 401
        fake.add_account("known")
        assert (await _chat(http, fake, "x", token="known"))[0] == 200


async def test_strict_statsig(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.strict_statsig = True
    assert statsig_valid(STATSIG) and statsig_valid(base64.b64encode(b"x1:abc").decode())
    assert not statsig_valid(base64.b64encode(b"zz:abc").decode()) and not statsig_valid("%%%")
    headers = _headers(statsig=base64.b64encode(b"nope").decode())
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=headers) as r:
        assert r.status == 403
    assert (await _chat(http, fake, "x"))[0] == 200


async def test_require_cf_clearance(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.require_cf_clearance = "clear-1"
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=_headers()) as r:
        assert r.status == 403 and r.headers["Content-Type"].startswith("text/html")
        page = await r.text()
        assert "Just a moment..." in page and "challenge-platform" in page
    headers = _headers(extra_cookie=";cf_clearance=clear-1")
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=headers) as r:
        assert r.status == 200
        await r.read()


# ------------------------------------------------------------------------------------------------ faults


PRE_STREAM = [
    ("401", 401, "application/json"),
    ("403-blocked", 403, "application/json"),
    ("403-antibot", 403, "application/json"),
    ("403-cf", 403, "text/html"),
    ("429", 429, "application/json"),
    ("500", 500, "text/plain"),
    ("502", 502, "text/html"),
    ("503", 503, "text/html"),
    ("503:text", 503, "text/plain"),
]


@pytest.mark.parametrize(("fault", "status", "ctype"), PRE_STREAM)
async def test_pre_stream_faults(
    fake: FakeGrok, http: aiohttp.ClientSession, fault: str, status: int, ctype: str
) -> None:
    fake.push_fault(fault)
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=_headers()) as r:
        assert r.status == status and r.headers["Content-Type"].startswith(ctype)
        assert "Retry-After" not in r.headers
        await r.read()
    assert fake.account("tok-a").remaining == 30  # rejected calls cost nothing


async def test_429_fault_retry_after_and_empty_body(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.push_fault("429", retry_after=7)
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=_headers()) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "7"
        assert await r.json() == {"error": {"code": 8, "message": "Too many requests", "details": []}}
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("[[fault:429:3]]"), headers=_headers()) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "3"
    async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("[[fault:empty]]"), headers=_headers()) as r:
        assert r.status == 200 and await r.read() == b""


@pytest.mark.parametrize("fault", ["inband-7", "inband-8", "inband-13"])
async def test_inband_top_level_errors(fake: FakeGrok, http: aiohttp.ClientSession, fault: str) -> None:
    _, lines = await _chat(http, fake, f"x [[fault:{fault}]]")
    assert lines[-1]["error"]["code"] == int(fault.split("-")[1])
    assert len(_final_tokens(lines)) == 2 and not any("modelResponse" in r for r in _responses(lines))


async def test_inband_response_errors(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    _, lines = await _chat(http, fake, "x [[fault:inband-usage]]")
    assert lines[-1]["result"]["response"]["error"]["message"].startswith("You've reached your usage limit")
    _, lines = await _chat(http, fake, "x [[fault:model-error]]")
    assert isinstance(_model_response(lines)["error"], str)
    _, lines = await _chat(http, fake, "x [[fault:stream-errors]]")
    assert isinstance(_model_response(lines)["streamErrors"], list)
    _, lines = await _chat(http, fake, "x [[fault:no-model-response]]")
    assert _final_tokens(lines) and not any("modelResponse" in r for r in _responses(lines))


async def test_framing_faults(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    async def raw(message: str) -> str:
        async with http.post(fake.base_url + CHAT_PATH, json=_chat_body(message), headers=_headers()) as r:
            return await r.text()

    good: Lines = []
    bad = 0
    for line in (await raw("x [[fault:malformed]]")).splitlines():
        try:
            good.append(json.loads(line))
        except ValueError:
            bad += 1
    assert bad == 1 and _model_response(good)["message"] == "".join(_final_tokens(good))
    assert "\n\n" in await raw("x [[fault:blank]]")
    text = await raw("x [[fault:multi-json]]")
    assert any("}{" in line for line in text.splitlines())
    assert "two on one line" in _model_response(_parse(text.replace("}{", "}\n{")))["message"]
    text = await raw("x [[fault:long-line]]")
    assert max(len(line) for line in text.splitlines()) >= 1 << 20
    lines = _parse(text)
    assert _model_response(lines)["message"] == "".join(_final_tokens(lines))


async def test_reset_fault_cuts_connection(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.push_fault("reset")
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=_headers()) as r:
            assert r.status == 200
            await r.read()
    assert (await _chat(http, fake, "after"))[0] == 200


async def test_stall_first_hits_client_timeout(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.push_fault("stall-first:0.8")
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(fake.base_url + CHAT_PATH, json=_chat_body("x"), headers=_headers(), timeout=timeout) as r:
            await r.read()
    assert (await _chat(http, fake, "next"))[0] == 200


async def test_timing_faults(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    for message, minimum in (
        ("[[tokens:6]] [[fault:slow-tokens:0.03]]", 0.15),
        ("x [[fault:stall-mid:0.2]]", 0.2),
        ("x [[fault:trickle:0.02]]", 0.18),
    ):
        started = time.monotonic()
        status, lines = await _chat(http, fake, message)
        assert status == 200 and time.monotonic() - started >= minimum
        assert _model_response(lines)["message"] == "".join(_final_tokens(lines))


async def test_token_delay_and_first_line_delay(http: aiohttp.ClientSession) -> None:
    async with FakeGrok(token_delay=0.02, first_line_delay=0.1) as fake:
        started = time.monotonic()
        await _chat(http, fake, "[[tokens:6]]")
        assert time.monotonic() - started >= 0.2


async def test_push_fault_scoped_to_token_and_count(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.push_fault("500", token="tok-b", count=2)
    assert (await _chat(http, fake, "x", token="tok-a"))[0] == 200
    assert (await _chat(http, fake, "x", token="tok-b"))[0] == 500
    assert (await _chat(http, fake, "x", token="tok-b"))[0] == 500
    assert (await _chat(http, fake, "x", token="tok-b"))[0] == 200
    fake.push_fault("401")
    fake.clear()
    assert (await _chat(http, fake, "x"))[0] == 200


# ------------------------------------------------------------------------------------------------ records & control


async def test_recording(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    await _chat(http, fake, "hello", token="tok-r")
    await _chat(http, fake, "hello", token="tok-s")
    calls = fake.chat_calls("tok-r")
    assert len(calls) == 1 and len(fake.chat_calls()) == 2
    call = calls[0]
    assert call.method == "POST" and call.json["message"] == "hello" and call.headers["x-statsig-id"] == STATSIG
    assert call.headers["cookie"] == "sso-rw=tok-r;sso=tok-r" and call.time > 0
    big = {"fileName": "b.bin", "fileMimeType": "application/octet-stream", "content": "A" * 200_000}
    await _post_json(http, fake.base_url + UPLOAD_PATH, big)
    record = fake.requests[-1]
    assert record.truncated and len(record.raw) == 64 * 1024 and len(record.json["content"]) < 1024


async def test_control_endpoints(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    base = fake.base_url + "/__fake"
    async with http.post(f"{base}/accounts", json={"token": "ctl", "tier": "super", "quota": 3}) as r:
        assert r.status == 200 and (await r.json())["total"] == 3
    async with http.get(f"{base}/accounts") as r:
        assert [a["token"] for a in await r.json()] == ["ctl"]
    async with http.post(f"{base}/fault", json={"fault": "429", "token": "ctl", "count": 1, "params": {}}) as r:
        assert r.status == 200
    async with http.post(f"{base}/fault", json={"fault": "bogus"}) as r:
        assert r.status == 400
    assert (await _chat(http, fake, "x", token="ctl"))[0] == 429
    assert (await _chat(http, fake, "x", token="ctl"))[0] == 200
    async with http.get(f"{base}/requests") as r:
        records = await r.json()
    assert [rec["path"] for rec in records] == [CHAT_PATH, CHAT_PATH]
    assert records[0]["json"]["message"] == "x" and records[0]["headers"]["x-statsig-id"] == STATSIG
    async with http.post(f"{base}/reset") as r:
        assert r.status == 200
    assert fake.requests == []
    async with http.post(f"{base}/config", json={"require_cf_clearance": "cf", "strict_statsig": True}) as r:
        assert r.status == 200 and (await r.json())["require_cf_clearance"] == "cf"
    assert fake.require_cf_clearance == "cf" and fake.strict_statsig is True
    async with http.post(f"{base}/config", json={"framing": "xml"}) as r:
        assert r.status == 400
    async with http.post(f"{base}/modes", json={"id": "grok-beta-x", "quotas": {"basic": 5}}) as r:
        assert r.status == 200 and "grok-beta-x" in (await r.json())["modes"]
    async with http.post(f"{base}/modes", json={"id": "heavy", "available": True}) as r:
        assert r.status == 200 and fake.modes["heavy"].available is True
    async with http.post(f"{base}/modes", json={"id": "x", "quotas": {"platinum": 1}}) as r:
        assert r.status == 400
    async with http.get(f"{base}/mgw") as r:
        assert r.status == 200 and await r.json() == []


async def test_serve_forever_runs_until_cancelled(http: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve_forever("127.0.0.1", port, max_concurrency_per_account=2))
    try:
        for _ in range(100):
            try:
                async with http.get(f"http://127.0.0.1:{port}/__fake/accounts") as r:
                    assert r.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("fake never started")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_cloudflare_of_a_fake_in_another_process_is_driven_over_http(
    fake: FakeGrok, http: aiohttp.ClientSession
) -> None:
    base = f"{fake.base_url}/__fake"
    async with http.post(f"{base}/cloudflare", json={"challenge": ["127.0.0.1"]}) as r:
        assert r.status == 200 and (await r.json())["challenged"] == ["127.0.0.1"]
    async with http.get(f"{fake.base_url}/rest/modes") as r:
        assert r.status == 403 and r.headers["cf-mitigated"] == "challenge"
    async with http.get(f"{base}/cloudflare") as r:
        assert (await r.json())["challenges"] == [{"source": "127.0.0.1", "path": "/rest/modes"}]
    async with http.post(f"{base}/cloudflare", json={"release": ["127.0.0.1"]}) as r:
        assert (await r.json())["challenged"] == []
    async with http.post(f"{base}/cloudflare", json={"challenge": "127.0.0.1"}) as r:
        assert r.status == 400
    async with http.get(f"{fake.base_url}/") as r:
        assert f'content="{fake.site_verification}"' in await r.text()

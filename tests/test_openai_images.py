"""The OpenAI Images API end to end, with the openai SDK against the fake grok.com: generations over the Imagine
WebSocket (sizes, n, pro, moderation, streaming, failover) and edits over imagine-image-edit (uploads, several
images, streaming, refused images, the legacy upload)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import openai
import pytest

from grok2api.store.base import ModeQuota, NewAccount
from grok2api.testing import fake_imagine_windows
from grok2api.testing.fake_grok import CHAT_PATH, TINY_JPEG, UPLOAD_PATH, UPLOAD_V2_PATH, FakeGrok
from grok2api.testing.fake_records import RecordedRequest
from grok2api.testing.fake_upload import DIMENSIONS_INSUFFICIENT, IMAGINE_FILE_SOURCE, sent_file, solid_png

from harness import LiveGateway, upstream_chats

TOKEN = "painter"
WINDOW = 20
MODES = ("fast", "imagine-image", "imagine-image-pro", "imagine-image-edit")


@pytest.fixture(autouse=True)
def _imagine_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake's Imagine windows hold WINDOW queries of every kind too, so what the gateway learns from
    grok.com's quota_info agrees with what ``_account`` seeds."""
    totals = {tier: dict.fromkeys(kinds, WINDOW) for tier, kinds in fake_imagine_windows.IMAGINE_TOTALS.items()}
    monkeypatch.setattr(fake_imagine_windows, "IMAGINE_TOTALS", totals)


async def _account(gateway: LiveGateway, token: str = TOKEN) -> None:
    """An account whose chat and Imagine windows are known (WINDOW queries each), so spending shows."""
    quotas = {mode: ModeQuota(remaining=WINDOW, total=WINDOW, window_seconds=7200) for mode in MODES}
    await gateway.services.store.add_accounts([NewAccount(token=token, tier="basic", quotas=quotas)])
    await gateway.services.reload(force=True)


async def _spent(gateway: LiveGateway, token: str = TOKEN) -> dict[str, int]:
    """Queries taken from each known window."""
    account = await gateway.services.store.get_account(token)
    assert account is not None
    spent = {mode: WINDOW - (w.remaining or 0) for mode, w in account.quotas.items() if mode in MODES}
    return {mode: n for mode, n in spent.items() if n}


async def _fetch(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


def _edits(fake: FakeGrok) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.path == CHAT_PATH]


# ---- generations ----------------------------------------------------------------------------------------------


async def test_a_generation_is_one_imagine_request(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    result = await client.images.generate(prompt="a lighthouse at dusk")
    (image,) = result.data
    assert image.b64_json is None
    # Absolute even without base_url: an Images API client fetches the link itself.
    assert image.url.startswith(f"{gateway.url}/images/users-") and image.url.endswith("-image.jpg")
    assert await _fetch(image.url) == (200, TINY_JPEG, "image/jpeg")
    (session,) = fake.imagine_sessions()
    assert session.token == TOKEN and session.request is not None and session.request["text"] == "a lighthouse at dusk"
    props = session.properties
    assert (props["num_generations"], props["aspect_ratio"], props["enable_pro"]) == (4, "auto", False)
    assert upstream_chats(fake) == []  # no chat turn any more
    assert await _spent(gateway) == {"imagine-image": 1}


async def test_b64_json_and_n_beyond_one_request(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    result = await client.images.generate(prompt="five cats", n=5, response_format="b64_json")
    assert len(result.data) == 5 and all(base64.b64decode(i.b64_json) == TINY_JPEG for i in result.data)
    assert [s.properties["num_generations"] for s in fake.imagine_sessions()] == [8]  # the fewest covering 5
    result = await client.images.generate(prompt="ten cats", n=10)
    assert len({i.url for i in result.data}) == 10
    assert fake.imagine_sessions()[-1].properties["num_generations"] == 12
    assert await _spent(gateway) == {"imagine-image": 2}  # one query per request, whatever n


async def test_finals_sent_inline_or_as_links_both_serve(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    await gateway.settings(base_url="https://img.example")
    inline = await client.images.generate(prompt="a fox")
    linked = await client.images.generate(prompt="a fox [[finals:url]]")
    data_url = await client.images.generate(prompt="a fox [[finals:data-url]]", response_format="b64_json")
    assert base64.b64decode(data_url.data[0].b64_json) == TINY_JPEG
    assets = [r for r in fake.requests if r.path.startswith("/assets/")]
    assert [r.token for r in assets] == [TOKEN]  # only the linked final was downloaded, with its owner's cookie
    for result in (inline, linked):
        url = result.data[0].url
        assert url.startswith("https://img.example/images/users-")
        name = url.rsplit("/", 1)[1]
        assert await _fetch(f"{gateway.url}/images/{name}") == (200, TINY_JPEG, "image/jpeg")
    assert len([r for r in fake.requests if r.path.startswith("/assets/")]) == 1  # both served from the cache


async def test_pro_and_openai_model_names(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    await client.images.generate(prompt="a cat", model="grok-imagine-image-pro")
    for name in ("dall-e-3", "gpt-image-1", "dall-e-2"):
        await client.images.generate(prompt="a cat", model=name)
    assert [s.properties["enable_pro"] for s in fake.imagine_sessions()] == [True, False, False, False]
    assert await _spent(gateway) == {"imagine-image-pro": 1, "imagine-image": 3}
    models = {m.id for m in (await client.models.list()).data}
    assert {"grok-imagine-image", "grok-imagine-image-pro"} <= models and "grok-imagine-image-edit" not in models


@pytest.mark.parametrize(
    ("kwargs", "ratio"),
    [
        ({"size": "1024x1024"}, "1:1"),
        ({"size": "1792x1024"}, "16:9"),
        ({"size": "1024x1792"}, "9:16"),
        ({"size": "1536x1024"}, "3:2"),
        ({"size": "1024x1536"}, "2:3"),
        ({"size": "auto"}, "auto"),
        ({"extra_body": {"aspect_ratio": "9:16"}}, "9:16"),
        ({"size": "1024x1024", "extra_body": {"aspect_ratio": "2:3"}}, "2:3"),  # aspect_ratio wins
    ],
)
async def test_sizes_become_aspect_ratios(
    fake: FakeGrok, gateway: LiveGateway, client: Any, kwargs: dict[str, Any], ratio: str
) -> None:
    await _account(gateway)
    await client.images.generate(prompt="a cat", **kwargs)
    assert fake.imagine_sessions()[-1].properties["aspect_ratio"] == ratio


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"n": 11}, openai.BadRequestError, "n"),
        ({"size": "640x480"}, openai.BadRequestError, "size must be one of 1024x1024, 512x512"),
        ({"extra_body": {"aspect_ratio": "5:4"}}, openai.BadRequestError, "aspect_ratio must be one of 1:1, 16:9"),
        ({"model": "no-such-model"}, openai.NotFoundError, "does not exist"),
        ({"model": "grok-imagine-0.9"}, openai.BadRequestError, "makes videos"),
        ({"model": "grok-fast"}, openai.BadRequestError, "grok-imagine-image or grok-imagine-image-pro"),
        ({"model": "grok-imagine-image-edit"}, openai.NotFoundError, "does not exist"),
        ({"prompt": ""}, openai.BadRequestError, "prompt"),
        ({"prompt": "  "}, openai.BadRequestError, "The prompt is empty"),
    ],
)
async def test_generation_errors_use_the_openai_envelope(
    fake: FakeGrok, gateway: LiveGateway, client: Any, kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    await _account(gateway)
    with pytest.raises(error) as info:
        await client.images.generate(**{"prompt": "a cat", **kwargs})
    assert fragment in str(info.value)
    assert fake.imagine_sessions() == []


async def test_moderated_images_are_dropped(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    result = await client.images.generate(prompt="a cat [[moderate:0,2]]", n=4)
    assert len(result.data) == 2  # what was left
    with pytest.raises(openai.BadRequestError) as info:
        await client.images.generate(prompt="a cat [[moderate]]", n=2)
    error = info.value.response.json()["error"]
    assert error["code"] == "content_policy_violation" and "moderated" in error["message"]
    assert await _spent(gateway) == {"imagine-image": 2}  # grok.com drew them: both count


async def test_streaming_a_generation(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    stream = await client.images.generate(prompt="a cat", n=2, stream=True)
    events = [event async for event in stream]
    partials = [e for e in events if e.type == "image_generation.partial_image"]
    completed = [e for e in events if e.type == "image_generation.completed"]
    assert [e.type for e in events[-2:]] == ["image_generation.completed"] * 2
    # The previews of the two images returned: 30 % and 60 % of each.
    assert [e.partial_image_index for e in partials] == [0, 1, 2, 3]
    assert len(completed) == 2
    for event in partials + completed:
        assert base64.b64decode(event.b64_json) == TINY_JPEG
        assert (event.size, event.output_format, event.quality, event.background) == ("64x64", "jpeg", "auto", "auto")
    assert completed[0].usage.input_tokens == completed[0].usage.total_tokens > 0
    (session,) = fake.imagine_sessions()
    assert session.properties["num_generations"] == 4
    stream = await client.images.generate(prompt="a cat", stream=True, partial_images=1)
    assert [e.type async for e in stream] == ["image_generation.partial_image", "image_generation.completed"]


async def test_a_stream_of_moderated_images_ends_with_an_error(gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    stream = await client.images.generate(prompt="a cat [[moderate]]", stream=True, partial_images=0)
    with pytest.raises(openai.APIError) as info:
        async for _ in stream:
            pass
    assert "moderated every image" in info.value.message


@pytest.mark.parametrize(
    ("fault", "state", "window"),
    [
        ("imagine-429", "active", 0),  # that account's image window rests until it resets
        ("imagine-usage", "active", 0),
        ("imagine-403-blocked", "blocked", WINDOW),
        ("imagine-close", "active", WINDOW),  # a cut connection: the query goes back
    ],
)
async def test_failover_before_the_first_image(
    fake: FakeGrok, gateway: LiveGateway, client: Any, fault: str, state: str, window: int
) -> None:
    await _account(gateway, "first")
    await _account(gateway, "second")
    fake.push_fault(fault)  # whichever account the pool tries first
    result = await client.images.generate(prompt="a cat")
    assert len(result.data) == 1
    failed, served = [s.token for s in fake.imagine_sessions()]
    assert failed != served and None not in (failed, served)
    account = await gateway.services.store.get_account(str(failed))
    assert account is not None and account.state == state
    assert account.quotas["imagine-image"].remaining == window
    assert await _spent(gateway, str(served)) == {"imagine-image": 1}


async def test_an_error_after_the_first_image_is_not_retried(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway, "first")
    await _account(gateway, "second")
    with pytest.raises(openai.APIStatusError) as info:
        await client.images.generate(prompt="a cat [[fault:error]]")
    assert info.value.status_code == 502 and "Image generation failed" in info.value.message
    assert len(fake.imagine_sessions()) == 1  # the previews had arrived: nothing is retried after that


async def test_generation_needs_the_api_key(gateway: LiveGateway, fake: FakeGrok) -> None:
    await _account(gateway)
    await gateway.settings(api_key="sk-secret")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/v1/images/generations", json={"prompt": "a cat"}) as resp:
            assert resp.status == 401
            body = await resp.json()
    assert body["error"]["type"] == "authentication_error"
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="sk-secret", max_retries=0)
    try:
        result = await sdk.images.generate(prompt="a cat")
        assert result.data is not None and len(result.data) == 1
    finally:
        await sdk.close()


async def test_deeply_nested_generation_body_is_400_not_500(fake: FakeGrok, gateway: LiveGateway) -> None:
    await _account(gateway)
    depth = 100_000
    raw = b'{"prompt": "a cat", "metadata": ' + b"[" * depth + b"]" * depth + b"}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/v1/images/generations", data=raw) as resp:
            assert resp.status == 400
            body = await resp.json()
    assert (body["error"]["type"], body["error"]["code"]) == ("invalid_request_error", "invalid_json")
    assert fake.imagine_sessions() == []


async def test_concurrent_generations_share_nothing_but_the_pool(
    gateway: LiveGateway, client: Any, fake: FakeGrok
) -> None:
    await _account(gateway)
    results = await asyncio.gather(*(client.images.generate(prompt=f"cat {i}") for i in range(4)))
    urls = [r.data[0].url for r in results]
    assert len(set(urls)) == 4
    for url in urls:
        assert (await _fetch(url))[1] == TINY_JPEG


# ---- edits ----------------------------------------------------------------------------------------------------


async def test_an_edit_uploads_for_imagine_and_asks_for_the_edit(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    await _account(gateway)
    result = await client.images.edit(
        image=("photo.jpg", TINY_JPEG, "image/jpeg"), prompt="make it night", response_format="b64_json"
    )
    (image,) = result.data
    assert base64.b64decode(image.b64_json) == TINY_JPEG
    (upload,) = [r for r in fake.requests if r.path == UPLOAD_V2_PATH]
    sent = sent_file(upload)
    assert (sent.data, sent.source, upload.token) == (TINY_JPEG, IMAGINE_FILE_SOURCE, TOKEN)
    assert upload.headers["referer"] == f"{fake.base_url}/imagine"
    (edit,) = _edits(fake)
    assert edit.headers["referer"] == f"{fake.base_url}/imagine"
    (file_id,) = fake.account(TOKEN).uploads
    assert edit.json == {
        "modelName": "imagine-image-edit",
        "message": "make it night",
        "enableImageStreaming": True,
        "enableSideBySide": True,
        "sendFinalMetadata": True,
        "mediaGenInput": {"imageToImage": {"prompt": "make it night", "inputAssets": [file_id]}},
    }
    assert fake.imagine_sessions() == [] and await _spent(gateway) == {"imagine-image-edit": 1}


async def test_an_edit_of_several_images_with_a_size_and_a_mask(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    await _account(gateway)
    result = await client.images.edit(
        image=[("a.jpg", TINY_JPEG, "image/jpeg"), ("b.png", solid_png(80, 80), "image/png")],
        mask=("mask.png", solid_png(80, 80), "image/png"),  # ignored: grok.com has no masked editing
        prompt="merge them",
        size="1536x1024",
        n=2,
    )
    assert len({image.url for image in result.data}) == 2
    for image in result.data:
        assert (await _fetch(image.url))[1] == TINY_JPEG
    uploads = [sent_file(r) for r in fake.requests if r.path == UPLOAD_V2_PATH]
    assert sorted(u.content_type for u in uploads) == ["image/jpeg", "image/png"]  # the mask was not uploaded
    (edit,) = _edits(fake)
    edit_input = edit.json["mediaGenInput"]["imageToImage"]
    assert sorted(edit_input["inputAssets"]) == sorted(fake.account(TOKEN).uploads)
    assert edit_input["aspectRatio"] == "3:2"


async def test_an_edit_with_moderated_results(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    result = await client.images.edit(image=("a.jpg", TINY_JPEG, "image/jpeg"), prompt="x [[moderate:0]]", n=2)
    assert len(result.data) == 1
    with pytest.raises(openai.BadRequestError) as info:
        await client.images.edit(image=("a.jpg", TINY_JPEG, "image/jpeg"), prompt="x [[moderate]]")
    assert info.value.response.json()["error"]["code"] == "content_policy_violation"


async def test_streaming_an_edit(gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    stream = await client.images.edit(image=("a.jpg", TINY_JPEG, "image/jpeg"), prompt="at night", stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert events[0].partial_image_index == 0
    assert all(base64.b64decode(e.b64_json) == TINY_JPEG for e in events)


async def test_a_tiny_image_is_a_400_naming_grok_reason(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway, "first")
    await _account(gateway, "second")
    with pytest.raises(openai.BadRequestError) as info:
        await client.images.edit(
            image=[("a.jpg", TINY_JPEG, "image/jpeg"), ("dot.png", solid_png(1, 1), "image/png")], prompt="x"
        )
    error = info.value.response.json()["error"]
    assert error["message"] == f"image 2: grok.com refused the upload: {DIMENSIONS_INSUFFICIENT}"
    assert (error["param"], error["code"]) == ("image", "invalid_image")
    assert _edits(fake) == []  # no edit, and no second account tried
    assert len({r.token for r in fake.requests if r.path == UPLOAD_V2_PATH}) == 1
    for token in ("first", "second"):
        assert await _spent(gateway, token) == {}  # the query went back


async def test_an_edit_falls_back_to_the_legacy_upload(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    fake.push_fault("uploadv2-410")
    result = await client.images.edit(image=("a.jpg", TINY_JPEG, "image/jpeg"), prompt="x")
    assert len(result.data) == 1
    (legacy,) = [r for r in fake.requests if r.path == UPLOAD_PATH]
    assert base64.b64decode(legacy.json["content"]) == TINY_JPEG
    (file_id,) = fake.account(TOKEN).uploads
    assert _edits(fake)[0].json["mediaGenInput"]["imageToImage"]["inputAssets"] == [file_id]


async def test_edit_rejects_what_is_not_an_image(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    with pytest.raises(openai.BadRequestError) as info:
        await client.images.edit(image=("notes.txt", b"hello", "text/plain"), prompt="make it night")
    assert "not a JPEG, PNG" in info.value.message
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("prompt", "make it night")
        async with http.post(f"{gateway.url}/v1/images/edits", data=form) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == "image"
        async with http.post(f"{gateway.url}/v1/images/edits", json={"prompt": "x"}) as resp:
            assert resp.status == 400
            assert "multipart/form-data" in (await resp.json())["error"]["message"]
    assert _edits(fake) == [] and [r for r in fake.requests if r.path == UPLOAD_V2_PATH] == []


@pytest.mark.parametrize(
    ("fault", "message"), [("stall-mid:5", "stalled mid-answer"), ("close-mid", "broke mid-answer")]
)
async def test_an_image_stream_cut_after_the_previews_ends_with_an_error(
    gateway: LiveGateway, client: Any, fault: str, message: str
) -> None:
    await _account(gateway)
    await gateway.settings(stream_chunk_timeout=0.5)
    stream = await client.images.generate(prompt=f"a cat [[fault:{fault}]]", stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for event in stream:
            seen.append(event.type)
    assert seen and set(seen) == {"image_generation.partial_image"}  # the previews came, then the error
    assert message in info.value.message
    with pytest.raises(openai.APIStatusError) as status:
        await client.images.generate(prompt=f"a cat [[fault:{fault}]]")
    assert status.value.status_code == (504 if fault.startswith("stall") else 502)
    assert message in status.value.message


@pytest.mark.parametrize(("charset", "surrogate"), [("utf-7", "+2AA-"), ("unicode_escape", "\\ud800")])
async def test_an_edit_form_holding_a_lone_surrogate_is_a_400(
    fake: FakeGrok, gateway: LiveGateway, charset: str, surrogate: str
) -> None:
    """Starlette decodes multipart fields with the charset the request names; some charsets make lone surrogates."""
    await _account(gateway)
    boundary = "edit-boundary-5e1"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nnight {surrogate}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + TINY_JPEG
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}; charset={charset}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/v1/images/edits", data=body, headers=headers) as resp:
            error = (await resp.json())["error"]
            assert resp.status == 400 and error["code"] == "invalid_encoding", error
    assert _edits(fake) == []

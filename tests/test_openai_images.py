from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import openai
import pytest

from grok2api.store.base import ModeQuota, NewAccount
from grok2api.testing.fake_grok import TINY_JPEG, UPLOAD_V2_PATH, FakeGrok
from grok2api.testing.fake_upload import sent_file

from harness import LiveGateway, upstream_chats

TOKEN = "painter"


async def _account(
    gateway: LiveGateway, fake: FakeGrok, token: str = TOKEN, known_window: bool = True, tier: str = "basic"
) -> int:
    """Add the account (of ``tier`` on both sides); with ``known_window`` its fast window is seeded with what the
    fake will report (so learning it from grok.com changes nothing). Returns that window's size."""
    window = fake.set_tier(token, tier).window("fast")
    total = window.total
    quotas = {"fast": ModeQuota(remaining=total, total=total, window_seconds=window.window_seconds)}
    await gateway.services.store.add_accounts(
        [NewAccount(token=token, tier=tier, quotas=quotas if known_window else None)]
    )
    await gateway.services.reload(force=True)
    return total


async def _fetch(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


async def test_generation_as_url(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    total = await _account(gateway, fake)
    result = await client.images.generate(prompt="a lighthouse at dusk", model="grok-3-fast")
    (image,) = result.data
    assert image.b64_json is None
    # Absolute even without base_url: an Images API client fetches the link itself.
    assert image.url.startswith(f"{gateway.url}/images/users-") and image.url.endswith("-image.jpg")
    status, body, ctype = await _fetch(image.url)
    assert (status, ctype, body) == (200, "image/jpeg", TINY_JPEG)
    (session,) = fake.mgw_sessions()
    assert session.mode == "fast"
    assert "a lighthouse at dusk" in session.input_chunks[-1]["text"]["text"]
    assert (session.x_grok["enable_image_generation"], session.x_grok["image_generation_count"]) == (True, 2)
    account = await gateway.services.store.get_account(TOKEN)
    assert account is not None and account.remaining == total - 1  # one query of the fast window, images included


async def test_generation_as_b64_json_with_configured_base_url(
    gateway: LiveGateway, client: Any, fake: FakeGrok
) -> None:
    await _account(gateway, fake)
    await gateway.settings(base_url="https://img.example")
    result = await client.images.generate(prompt="a lighthouse", response_format="b64_json", n=2)
    assert len(result.data) == 2
    for image in result.data:
        assert image.url is None
        assert base64.b64decode(image.b64_json) == TINY_JPEG
    url_result = await client.images.generate(prompt="a lighthouse")
    assert url_result.data[0].url.startswith("https://img.example/images/users-")


async def test_n_beyond_one_generation_runs_more_turns(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway, fake, known_window=False)
    result = await client.images.generate(prompt="five cats", n=5)
    assert len(result.data) == 5
    assert len({image.url for image in result.data}) == 5
    assert len(upstream_chats(fake)) == 3  # two images per turn


async def test_openai_model_names_mean_the_default_model(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway, fake, tier="super")  # auto needs a super account
    result = await client.images.generate(prompt="a cat", model="dall-e-3")
    assert len(result.data) == 1
    result = await client.images.generate(prompt="a cat", model="grok-4-fast")  # an alias of grok-auto
    assert len(result.data) == 1
    assert [c.mode for c in upstream_chats(fake)] == ["fast", "auto"]  # grok-fast, the default, then auto


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"n": 11}, openai.BadRequestError, "n"),
        ({"model": "no-such-model"}, openai.NotFoundError, "does not exist"),
        ({"model": "grok-imagine-0.9"}, openai.BadRequestError, "/v1/chat/completions"),
        ({"prompt": ""}, openai.BadRequestError, "prompt"),
    ],
)
async def test_generation_errors_use_the_openai_envelope(
    fake: FakeGrok, gateway: LiveGateway, client: Any, kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    await _account(gateway, fake)
    with pytest.raises(error) as info:
        await client.images.generate(**{"prompt": "a cat", **kwargs})
    assert fragment in str(info.value)
    assert upstream_chats(fake) == []


async def test_an_answer_without_images_is_an_error_not_an_empty_list(
    gateway: LiveGateway, client: Any, fake: FakeGrok, chat_transport: str
) -> None:
    await _account(gateway, fake)
    if chat_transport == "rest":
        # The answer's text arrives, then the stream ends before any image.
        with pytest.raises(openai.APIStatusError) as info:
            await client.images.generate(prompt="a cat [[fault:no-model-response]]")
        assert info.value.status_code == 502
        assert "without an image: 'Generating images" in info.value.message
    else:
        # The socket answers a drawing request with images, or (a throttled account) with nothing at all.
        fake.push_fault("mgw-empty")
        with pytest.raises(openai.APIStatusError) as info:
            await client.images.generate(prompt="a cat")
        assert info.value.status_code == 502
        assert "without any text or image" in info.value.message


async def test_generation_needs_the_api_key(gateway: LiveGateway, fake: FakeGrok) -> None:
    await _account(gateway, fake)
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
    await _account(gateway, fake)
    depth = 100_000
    raw = b'{"prompt": "a cat", "metadata": ' + b"[" * depth + b"]" * depth + b"}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/v1/images/generations", data=raw) as resp:
            assert resp.status == 400
            body = await resp.json()
    assert (body["error"]["type"], body["error"]["code"]) == ("invalid_request_error", "invalid_json")
    assert upstream_chats(fake) == []


async def test_edit_uploads_the_image_and_returns_new_ones(
    fake: FakeGrok, gateway: LiveGateway, client: Any, chat_transport: str
) -> None:
    await _account(gateway, fake)
    result = await client.images.edit(
        image=("photo.jpg", TINY_JPEG, "image/jpeg"), prompt="make it night", response_format="b64_json"
    )
    (image,) = result.data
    assert base64.b64decode(image.b64_json) == TINY_JPEG
    (upload,) = [r for r in fake.requests if r.path == UPLOAD_V2_PATH]
    assert sent_file(upload).data == TINY_JPEG and upload.token == TOKEN
    (chat,) = upstream_chats(fake)
    assert chat.transport == chat_transport and "make it night" in chat.message
    assert chat.file_ids == list(fake.account(TOKEN).uploads)  # the uploaded file, mentioned in the chat


async def test_edit_rejects_what_is_not_an_image(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway, fake)
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
    assert upstream_chats(fake) == []


async def test_concurrent_generations_share_nothing_but_the_pool(
    gateway: LiveGateway, client: Any, fake: FakeGrok
) -> None:
    await _account(gateway, fake, known_window=False)
    results = await asyncio.gather(*(client.images.generate(prompt=f"cat {i}") for i in range(4)))
    urls = [r.data[0].url for r in results]
    assert len(set(urls)) == 4
    for url in urls:
        assert (await _fetch(url))[1] == TINY_JPEG

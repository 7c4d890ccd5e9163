from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import openai
import pytest

from grok2api.store.base import ModeQuota, NewAccount
from grok2api.testing.fake_grok import TINY_JPEG, FakeGrok

from harness import LiveGateway

TOKEN = "painter"


async def _account(gateway: LiveGateway, token: str = TOKEN, remaining: int | None = 80) -> None:
    quotas = None if remaining is None else {"fast": ModeQuota(remaining=remaining)}
    await gateway.services.store.add_accounts([NewAccount(token=token, quotas=quotas)])
    await gateway.services.reload(force=True)


async def _fetch(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


async def test_generation_as_url(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    result = await client.images.generate(prompt="a lighthouse at dusk", model="grok-3-fast")
    (image,) = result.data
    assert image.b64_json is None
    # Absolute even without base_url: an Images API client fetches the link itself.
    assert image.url.startswith(f"{gateway.url}/images/users-") and image.url.endswith("-image.jpg")
    status, body, ctype = await _fetch(image.url)
    assert (status, ctype, body) == (200, "image/jpeg", TINY_JPEG)
    (chat,) = fake.chat_calls()
    assert "a lighthouse at dusk" in chat.json["message"]
    assert chat.json["enableImageGeneration"] is True
    account = await gateway.services.store.get_account(TOKEN)
    assert account is not None and account.remaining == 75  # one turn plus one image generation


async def test_generation_as_b64_json_with_configured_base_url(gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    await gateway.settings(base_url="https://img.example")
    result = await client.images.generate(prompt="a lighthouse", response_format="b64_json", n=2)
    assert len(result.data) == 2
    for image in result.data:
        assert image.url is None
        assert base64.b64decode(image.b64_json) == TINY_JPEG
    url_result = await client.images.generate(prompt="a lighthouse")
    assert url_result.data[0].url.startswith("https://img.example/images/users-")


async def test_n_beyond_one_generation_runs_more_turns(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway, remaining=None)
    result = await client.images.generate(prompt="five cats", n=5)
    assert len(result.data) == 5
    assert len({image.url for image in result.data}) == 5
    assert len(fake.chat_calls()) == 3  # two images per turn


async def test_openai_model_names_mean_the_default_model(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    result = await client.images.generate(prompt="a cat", model="dall-e-3")
    assert len(result.data) == 1
    assert fake.chat_calls()[0].json["modelName"] == "grok-3"


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
    await _account(gateway)
    with pytest.raises(error) as info:
        await client.images.generate(**{"prompt": "a cat", **kwargs})
    assert fragment in str(info.value)
    assert fake.chat_calls() == []


async def test_an_answer_without_images_is_an_error_not_an_empty_list(gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    with pytest.raises(openai.APIStatusError) as info:
        await client.images.generate(prompt="a cat [[fault:no-model-response]]")
    assert info.value.status_code == 502
    assert "without an image" in info.value.message


async def test_generation_needs_the_api_key(gateway: LiveGateway) -> None:
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
    assert fake.chat_calls() == []


async def test_edit_uploads_the_image_and_returns_new_ones(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await _account(gateway)
    result = await client.images.edit(
        image=("photo.jpg", TINY_JPEG, "image/jpeg"), prompt="make it night", response_format="b64_json"
    )
    (image,) = result.data
    assert base64.b64decode(image.b64_json) == TINY_JPEG
    (upload,) = [r for r in fake.requests if r.path == "/rest/app-chat/upload-file"]
    assert base64.b64decode(upload.json["content"]) == TINY_JPEG and upload.token == TOKEN
    (chat,) = fake.chat_calls()
    assert "make it night" in chat.json["message"]
    assert chat.json["fileAttachments"] == list(fake.account(TOKEN).uploads)  # the uploaded file


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
    assert fake.chat_calls() == []


async def test_concurrent_generations_share_nothing_but_the_pool(gateway: LiveGateway, client: Any) -> None:
    await _account(gateway, remaining=None)
    results = await asyncio.gather(*(client.images.generate(prompt=f"cat {i}") for i in range(4)))
    urls = [r.data[0].url for r in results]
    assert len(set(urls)) == 4
    for url in urls:
        assert (await _fetch(url))[1] == TINY_JPEG

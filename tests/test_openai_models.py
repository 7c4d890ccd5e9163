"""GET /v1/models and /v1/models/{id}, through the openai SDK and raw."""

from __future__ import annotations

import aiohttp
import msgspec
import openai
import pytest

from grok2api.grok.catalog import MODELS

from harness import LiveGateway


async def get_raw(gateway: LiveGateway, path: str, **headers: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}{path}", headers=headers) as resp:
        return resp.status, msgspec.json.decode(await resp.read())


async def test_list_models(client: openai.AsyncOpenAI) -> None:
    page = await client.models.list()
    assert [m.id for m in page.data] == list(MODELS)
    assert "grok-4-heavy" in MODELS and "grok-4.1-thinking" in MODELS
    for model in page.data:
        assert (model.object, model.owned_by) == ("model", "x-ai")
        assert model.created > 0


async def test_list_models_raw_shape(gateway: LiveGateway) -> None:
    status, body = await get_raw(gateway, "/v1/models")
    assert status == 200
    assert body["object"] == "list"
    data = body["data"]
    assert isinstance(data, list)
    by_id = {m["id"]: m for m in data}
    fast = by_id["grok-4-fast"]
    spec = MODELS["grok-4-fast"]
    assert fast["display_name"] == spec.display_name
    assert fast["description"] == spec.description
    assert fast["raw_model_path"] == "grok-4-mini-thinking-tahoe/MODEL_MODE_GROK_4_MINI_THINKING"
    assert fast["default_max_output_tokens"] == spec.max_output_tokens


@pytest.mark.parametrize("model_id", ["grok-3-fast", "grok-4.1", "grok-imagine-0.9"])
async def test_retrieve_model(client: openai.AsyncOpenAI, model_id: str) -> None:
    model = await client.models.retrieve(model_id)
    assert model.id == model_id
    assert model.object == "model"
    assert (model.model_extra or {})["display_name"] == MODELS[model_id].display_name


@pytest.mark.parametrize("model_id", ["gpt-4o", "grok-3", "grok-3-fast/extra"])
async def test_unknown_model_is_404(client: openai.AsyncOpenAI, gateway: LiveGateway, model_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve(model_id)
    assert (info.value.code, info.value.param) == ("model_not_found", "model")
    status, body = await get_raw(gateway, f"/v1/models/{model_id}")
    assert status == 404
    assert body == {
        "error": {
            "message": f"The model {model_id!r} does not exist.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


async def test_models_need_the_api_key_when_one_is_set(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.settings(api_key="sk-test")
    for path in ("/v1/models", "/v1/models/grok-3-fast"):
        status, body = await get_raw(gateway, path)
        assert status == 401
        assert body["error"]["code"] == "missing_api_key"  # type: ignore[index]
        status, _ = await get_raw(gateway, path, Authorization="Bearer sk-test")
        assert status == 200
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()

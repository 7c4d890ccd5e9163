"""GET /v1/models and /v1/models/{id}, through the openai SDK and raw: grok.com's modes under their public ids,
the earlier ids as aliases, and the modes grok.com adds or withdraws."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import openai
import pytest

from grok2api.grok.catalog import ALIASES, MODELS
from grok2api.testing.fake_grok import MODES_PATH, FakeGrok

from harness import LiveGateway

MODES = {"grok-fast": ("fast", "basic"), "grok-auto": ("auto", "super"), "grok-expert": ("expert", "super")}
MODES["grok-heavy"] = ("heavy", "heavy")
# Imagine's models: each with its own quota window (named like a mode), for the Images and Videos APIs.
MEDIA = {
    "grok-imagine-image": ("imagine-image", "basic"),
    "grok-imagine-image-pro": ("imagine-image-pro", "basic"),
    "grok-imagine-video": ("imagine-video", "basic"),
}


async def get_raw(gateway: LiveGateway, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}{path}", headers=headers) as resp:
        return resp.status, msgspec.json.decode(await resp.read())


async def model_cards(gateway: LiveGateway) -> dict[str, dict[str, Any]]:
    status, body = await get_raw(gateway, "/v1/models")
    assert status == 200 and body["object"] == "list"
    return {m["id"]: m for m in body["data"]}


async def test_list_models(client: openai.AsyncOpenAI) -> None:
    page = await client.models.list()
    assert [m.id for m in page.data] == list(MODELS)
    assert set(MODES) | set(MEDIA) | set(ALIASES) == set(MODELS)
    for model in page.data:
        assert (model.object, model.owned_by) == ("model", "x-ai")
        assert model.created > 0


async def test_list_models_raw_shape(gateway: LiveGateway) -> None:
    by_id = await model_cards(gateway)
    for model_id, (mode, tier) in {**MODES, **MEDIA}.items():
        card, spec = by_id[model_id], MODELS[model_id]
        assert (card["mode"], card["raw_model_path"], card["min_tier"], card["alias_of"]) == (mode, mode, tier, None)
        assert (card["display_name"], card["description"]) == (spec.display_name, spec.description)
        assert card["default_max_output_tokens"] == spec.max_output_tokens
    # every id of the earlier catalogue stays, saying which mode model it stands for
    assert ALIASES == {
        "grok-3-fast": "grok-fast",
        "grok-4.1": "grok-fast",
        "grok-4-fast": "grok-auto",
        "grok-4.1-thinking": "grok-auto",
        "grok-4-fast-expert": "grok-expert",
        "grok-4-expert": "grok-expert",
        "grok-4-heavy": "grok-heavy",
        "grok-imagine-0.9": "grok-imagine-video",
    }
    for alias, target in ALIASES.items():
        card = by_id[alias]
        assert (card["alias_of"], card["mode"], card["min_tier"]) == (target, *{**MODES, **MEDIA}[target]), alias
        assert target in card["description"], alias


@pytest.mark.parametrize(
    ("model_id", "mode"),
    [("grok-fast", "fast"), ("grok-3-fast", "fast"), ("grok-4.1", "fast"), ("grok-imagine-0.9", "imagine-video")],
)
async def test_retrieve_model(client: openai.AsyncOpenAI, model_id: str, mode: str) -> None:
    model = await client.models.retrieve(model_id)
    assert model.id == model_id
    assert model.object == "model"
    extra = model.model_extra or {}
    assert extra["display_name"] == MODELS[model_id].display_name
    assert (extra["mode"], extra["alias_of"]) == (mode, MODELS[model_id].alias_of)


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


async def test_modes_grok_adds_or_withdraws_show_after_one_poll(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    fake.add_mode("grok-420-computer-use-sa", title="Grok 4.3 beta", description="Uses a computer.")
    fake.set_mode_available("expert", False)
    await gateway.add_accounts("tok-modes")
    assert await gateway.services.refresh_modes()  # what the background poll does every modes_refresh_seconds
    by_id = await model_cards(gateway)
    card = by_id["grok-420-computer-use-sa"]  # the id already starts with grok-: not doubled
    assert (card["mode"], card["alias_of"], card["display_name"]) == ("grok-420-computer-use-sa", None, "Grok 4.3 beta")
    assert card["description"] == "Uses a computer."
    # withdrawn: the mode and its aliases are gone from the list and cannot be asked for
    assert not {"grok-expert", "grok-4-expert", "grok-4-fast-expert"} & set(by_id)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="grok-4-expert", messages=[{"role": "user", "content": "hi"}])

    # usable at once: the chat names the new mode
    reply = await client.chat.completions.create(
        model="grok-420-computer-use-sa", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Hello! You said: hi"
    assert [s.mode for s in fake.mgw_sessions()] == ["grok-420-computer-use-sa"]

    fake.set_mode_available("expert", None)  # back for the tiers it has quota for
    fake.set_tier("tok-modes", "super")
    assert await gateway.services.refresh_modes()
    assert "grok-expert" in await model_cards(gateway)


async def test_a_basic_account_does_not_hide_the_modes_of_a_super_one(gateway: LiveGateway, fake: FakeGrok) -> None:
    # grok.com lists expert and heavy as unavailable to a basic account: the modes are read with the highest tier.
    fake.set_tier("tok-super", "super")
    await gateway.add_accounts("tok-basic")
    await gateway.add_accounts("tok-super", tier="super")
    assert await gateway.services.refresh_modes()
    (asked,) = [r.token for r in fake.requests if r.path == MODES_PATH]
    assert asked == "tok-super"
    by_id = await model_cards(gateway)
    assert {"grok-fast", "grok-auto", "grok-expert", "grok-4-expert"} <= set(by_id)
    assert not {"grok-heavy", "grok-4-heavy"} & set(by_id)  # no account in the pool is heavy


async def test_models_need_the_api_key_when_one_is_set(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.settings(api_key="sk-test")
    for path in ("/v1/models", "/v1/models/grok-3-fast"):
        status, body = await get_raw(gateway, path)
        assert status == 401
        assert body["error"]["code"] == "missing_api_key"
        status, _ = await get_raw(gateway, path, Authorization="Bearer sk-test")
        assert status == 200
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()

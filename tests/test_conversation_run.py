"""What ``open_conversation`` and ``count_prompt_tokens`` refuse before anything is sent, whichever face asked: an
image model cannot hold a conversation (grok.com has no chat in Imagine's modes), so it is the client's 400 naming
``model``, never a doomed upstream call reported as grok.com's 502; and an image that is not one is a 400 naming
the request field that holds it (``messages`` or ``input``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fuzzing import JSON_HEADERS, FuzzApp, fuzz_app

from harness import upstream_chats

pytestmark = pytest.mark.asyncio(loop_scope="module")

HI = [{"role": "user", "content": "hi"}]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FuzzApp]:
    async with fuzz_app(tmp_path_factory.mktemp("conversation-run")) as app:
        yield app


def error_of(path: str, body: Any) -> dict[str, Any]:
    """The error object, in the face's own shape."""
    if path.startswith("/v1/messages"):
        assert body["type"] == "error"
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize("model", ["grok-imagine-image", "grok-imagine-image-pro"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": HI}),
        ("/v1/chat/completions", {"messages": HI, "stream": True}),
        ("/v1/responses", {"input": "hi"}),
        ("/v1/responses", {"input": "hi", "stream": True}),
        ("/v1/messages", {"max_tokens": 16, "messages": HI}),
        ("/v1/messages", {"max_tokens": 16, "messages": HI, "stream": True}),
        ("/v1/messages/count_tokens", {"messages": HI}),
    ],
)
async def test_an_image_model_cannot_hold_a_conversation(
    gw: FuzzApp, path: str, body: dict[str, Any], model: str
) -> None:
    before = len(upstream_chats(gw.fake))
    answer = await gw.request("POST", path, json.dumps({"model": model, **body}).encode(), JSON_HEADERS)
    assert answer.status == 400, answer.body
    error = error_of(path, answer.json())
    assert model in error["message"] and "/v1/images/generations" in error["message"]
    if not path.startswith("/v1/messages"):
        assert error["param"] == "model"
    assert len(upstream_chats(gw.fake)) == before


EMPTY_IMAGE = "data:image/png;base64,"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": EMPTY_IMAGE}}]}]},
            "messages",
        ),
        (
            "/v1/responses",
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": EMPTY_IMAGE}]}]},
            "input",
        ),
    ],
)
async def test_a_bad_image_is_a_400_naming_the_field_that_holds_it(
    gw: FuzzApp, path: str, body: dict[str, Any], param: str
) -> None:
    answer = await gw.request("POST", path, json.dumps({"model": "grok-fast", **body}).encode(), JSON_HEADERS)
    assert answer.status == 400, answer.body
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_image", param)

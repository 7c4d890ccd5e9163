"""Rendering Grok events as OpenAI output: error texts of answers that break mid-way, in both modes."""

from __future__ import annotations

from typing import Any

import msgspec
import openai
import pytest

from harness import LiveGateway

MODEL = "grok-3-fast"


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def last_error(client: openai.AsyncOpenAI, text: str, stream: bool) -> openai.APIError:
    with pytest.raises(openai.APIError) as info:
        if stream:
            async for _ in await client.chat.completions.create(model=MODEL, messages=user(text), stream=True):
                pass
        else:
            await client.chat.completions.create(model=MODEL, messages=user(text))
    return info.value


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_broken_connection_mid_answer_reads_as_words(
    gateway: LiveGateway, client: openai.AsyncOpenAI, stream: bool
) -> None:
    await gateway.add_accounts("tok1")
    err = await last_error(client, "hi [[fault:reset]]", stream)
    assert "mid-answer" in err.message and "retry" in err.message
    # never an aiohttp class name or a Python repr such as <TransferEncodingError: 400, message='...'>
    for leak in ("<", "Error:", "ClientPayload", "message="):
        assert leak not in err.message, err.message


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_in_band_error_text_is_punctuated(gateway: LiveGateway, client: openai.AsyncOpenAI, stream: bool) -> None:
    await gateway.add_accounts("tok1")
    err = await last_error(client, "hi [[fault:inband-8]]", stream)
    assert err.message.endswith(  # the SDK prefixes "Error code: 429 - " to JSON errors
        "grok.com reported an error mid-answer: Too many requests. The account hit its usage limit; retry the request."
    )
    assert b"Traceback" not in msgspec.json.encode(err.body)

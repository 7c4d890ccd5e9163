"""POST /v1/messages end to end: the official anthropic SDK against the real app under hypercorn, in front of
the fake grok.com (plain answers, thinking, limits, images, history, token counting)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import msgspec
import pytest
from aiohttp import web
from anthropic.types import Message, TextBlock, ThinkingBlock

from grok2api.testing.fake_grok import TINY_JPEG, UPLOAD_V2_PATH, FakeGrok

from harness import LiveGateway, serve_app, upstream_chats

MODEL = "grok-3-fast"
ANSWER = "Hello! You said: hi"
REASONING = "Thinking about your request\n\nLet me think about this."
JPEG_B64 = base64.b64encode(TINY_JPEG).decode()


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def texts(message: Message) -> str:
    return "".join(b.text for b in message.content if isinstance(b, TextBlock))


async def post(gateway: LiveGateway, body: dict[str, Any], path: str = "/v1/messages") -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}{path}", data=msgspec.json.encode(body)) as resp,
    ):
        return resp.status, await resp.read()


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """An Anthropic SSE body as (event name, data) pairs; each frame is one ``event:`` and one ``data:`` line."""
    text = raw.decode()
    assert text.endswith("\n\n")
    out: list[tuple[str, dict[str, Any]]] = []
    for frame in text[:-2].split("\n\n"):
        name, data = frame.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), frame
        payload = msgspec.json.decode(data[len("data: ") :])
        assert payload["type"] == name[len("event: ") :]
        out.append((name[len("event: ") :], payload))
    return out


@pytest.fixture
async def ready(gateway: LiveGateway) -> LiveGateway:
    await gateway.add_accounts("tok-msgs")
    return gateway


# ---- answers --------------------------------------------------------------------------------------------


async def test_create(ready: LiveGateway, claude: anthropic.AsyncAnthropic, chat_transport: str) -> None:
    message = await claude.messages.create(model=MODEL, max_tokens=1024, messages=user("hi"))
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    assert [b.type for b in message.content] == ["text"] and texts(message) == ANSWER
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.input_tokens == 1 and message.usage.output_tokens == len(ANSWER.encode()) // 4 + 1


async def test_stream_helper(ready: LiveGateway, claude: anthropic.AsyncAnthropic, chat_transport: str) -> None:
    async with claude.messages.stream(model=MODEL, max_tokens=1024, messages=user("hi")) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == ANSWER  # token by token
    assert texts(final) == ANSWER and final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 1 and final.usage.output_tokens > 0


async def test_stream_events_in_order(ready: LiveGateway) -> None:
    status, raw = await post(ready, {"model": MODEL, "max_tokens": 64, "messages": user("hi"), "stream": True})
    assert status == 200
    seen = events(raw)
    names = [name for name, _ in seen]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = seen[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] == 1
    assert seen[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert all(data["index"] == 0 and data["delta"]["type"] == "text_delta" for _, data in seen[3:-3])
    delta = seen[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] > 0 and delta["usage"]["input_tokens"] == 1


async def test_any_anthropic_version_is_accepted(ready: LiveGateway) -> None:
    body = msgspec.json.encode({"model": MODEL, "max_tokens": 64, "messages": user("hi")})
    for version in ("2023-06-01", "2031-01-01", "not-a-date"):
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{ready.url}/v1/messages", data=body, headers={"anthropic-version": version}) as resp,
        ):
            assert resp.status == 200
            assert msgspec.json.decode(await resp.read())["content"][0]["text"] == ANSWER


# ---- thinking -------------------------------------------------------------------------------------------


async def test_thinking_blocks_when_asked(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, chat_transport: str
) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    message = await claude.messages.create(
        model=MODEL, max_tokens=4096, messages=user("hi [[think]]"), thinking=thinking
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    block = message.content[0]
    assert isinstance(block, ThinkingBlock) and block.signature
    assert block.thinking.strip() == REASONING and texts(message) == ANSWER

    async with claude.messages.stream(
        model=MODEL, max_tokens=4096, messages=user("hi [[think]]"), thinking=thinking
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds and kinds.index("thinking") < kinds.index("text")
    streamed = final.content[0]
    assert isinstance(streamed, ThinkingBlock) and streamed.thinking.strip() == REASONING and streamed.signature
    assert texts(final) == ANSWER


async def test_without_thinking_reasoning_is_dropped(ready: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(model=MODEL, max_tokens=1024, messages=user("hi [[think]]"))
    assert [b.type for b in message.content] == ["text"] and texts(message) == ANSWER
    off: Any = {"type": "disabled"}
    message = await claude.messages.create(model=MODEL, max_tokens=1024, messages=user("hi [[think]]"), thinking=off)
    assert [b.type for b in message.content] == ["text"]
    status, raw = await post(
        ready,
        {
            "model": MODEL,
            "max_tokens": 64,
            "messages": user("hi [[think]]"),
            "stream": True,
            "thinking": {"type": "adaptive", "display": "omitted"},
        },
    )
    assert status == 200 and b"thinking" not in raw


async def test_thinking_raw_stream_has_a_signature_before_its_stop(ready: LiveGateway) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": user("hi [[think]]"),
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    status, raw = await post(ready, body)
    assert status == 200
    seen = events(raw)
    first = seen[2][1]
    assert first["content_block"] == {"type": "thinking", "thinking": "", "signature": ""} and first["index"] == 0
    block0 = [data for name, data in seen if data.get("index") == 0]
    assert block0[-2]["delta"]["type"] == "signature_delta" and block0[-1]["type"] == "content_block_stop"
    assert {data["delta"]["type"] for data in block0[1:-2]} == {"thinking_delta"}
    assert any(data.get("content_block", {}).get("type") == "text" and data["index"] == 1 for _, data in seen)


# ---- limits ---------------------------------------------------------------------------------------------


async def test_stop_sequences(ready: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model=MODEL, max_tokens=1024, messages=user("hi"), stop_sequences=["nothing", "said"]
    )
    assert texts(message) == "Hello! You "
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "said")
    async with claude.messages.stream(
        model=MODEL, max_tokens=1024, messages=user("hi"), stop_sequences=["said"]
    ) as stream:
        final = await stream.get_final_message()
    assert texts(final) == "Hello! You "
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "said")


async def test_max_tokens(ready: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(model=MODEL, max_tokens=2, messages=user("hi"))
    assert texts(message) == ANSWER[:8] and message.stop_reason == "max_tokens"
    async with claude.messages.stream(model=MODEL, max_tokens=2, messages=user("hi")) as stream:
        final = await stream.get_final_message()
    assert texts(final) == ANSWER[:8] and final.stop_reason == "max_tokens"


# ---- input ----------------------------------------------------------------------------------------------


async def test_system_and_history_are_flattened(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok
) -> None:
    await claude.messages.create(
        model=MODEL,
        max_tokens=64,
        system="Be brief.",
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi there."}]},
            {"role": "user", "content": [{"type": "text", "text": "again"}, {"type": "text", "text": "please"}]},
        ],
    )
    await claude.messages.create(
        model=MODEL,
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        messages=user("hello"),
    )
    first, second = (chat.message for chat in upstream_chats(fake))
    assert first == "System: Be brief.\n\nUser: hello\n\nAssistant: Hi there.\n\nUser: again\nplease"
    assert second == "System: Be brief.\nBe kind.\n\nUser: hello"


async def test_earlier_thinking_blocks_are_not_sent(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok
) -> None:
    await claude.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=[
            {"role": "user", "content": "hello"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "SECRET PLAN", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Hi."},
                ],
            },
            {"role": "user", "content": "again"},
        ],
    )
    (chat,) = upstream_chats(fake)
    assert chat.message == "User: hello\n\nAssistant: Hi.\n\nUser: again"


@pytest.fixture
async def image_host() -> AsyncIterator[str]:
    async def cat(request: web.Request) -> web.Response:
        return web.Response(body=TINY_JPEG, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/cat.jpg", cat)
    async with serve_app(app) as url:
        yield url


async def test_images_from_base64_and_urls(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok, image_host: str
) -> None:
    await ready.settings(allow_private_image_urls=True)  # the image host is on loopback
    content: Any = [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG_B64}},
        {"type": "image", "source": {"type": "url", "url": f"{image_host}/cat.jpg"}},
    ]
    message = await claude.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": content}])
    assert message.stop_reason == "end_turn"
    (chat,) = upstream_chats(fake)
    assert chat.message == "compare\n[image 1]\n[image 2]" and len(chat.file_ids) == 2
    assert len([r for r in fake.requests if r.path == UPLOAD_V2_PATH]) == 2


# ---- count_tokens ---------------------------------------------------------------------------------------


async def test_count_tokens_matches_the_usage(ready: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    messages: Any = [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "tell me more"},
    ]
    counted = await claude.messages.count_tokens(model=MODEL, system="Be brief.", messages=messages)
    message = await claude.messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=messages)
    assert counted.input_tokens == message.usage.input_tokens > 10
    tool: Any = {"name": "f", "input_schema": {"type": "object"}}
    with_tools = await claude.messages.count_tokens(model=MODEL, messages=messages, tools=[tool])
    assert with_tools.input_tokens > counted.input_tokens  # the tool instructions count too


async def test_count_tokens_checks_its_input(ready: LiveGateway) -> None:
    status, raw = await post(ready, {"model": "nope", "messages": user("x")}, "/v1/messages/count_tokens")
    assert status == 404 and msgspec.json.decode(raw)["error"]["type"] == "not_found_error"
    body = {"model": MODEL, "messages": user("x"), "tool_choice": {"type": "any"}}
    status, raw = await post(ready, body, "/v1/messages/count_tokens")
    assert status == 400 and "needs tools" in msgspec.json.decode(raw)["error"]["message"]

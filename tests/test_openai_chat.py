"""POST /v1/chat/completions end to end: the official openai SDK against the real app and the fake grok.com.

The chat features run over both ways a chat reaches grok.com (tests that take ``chat_transport``): the mgw
WebSocket (the default) and the REST fallback (``chat_transport=rest``). What only the WebSocket protocol has
(its event families, card tags, unknown shapes) and what does not depend on the transport (request validation,
prompt flattening) runs once, over the WebSocket.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from grok2api.grok import mgw
from grok2api.settings import RuntimeSettings
from grok2api.testing.fake_grok import (
    SEARCH_RESULTS,
    SESSION_PATH,
    TINY_JPEG,
    UNKNOWN_CHANNEL,
    UNKNOWN_CHUNK,
    UNKNOWN_EVENT,
    X_POST,
    FakeGrok,
)

from harness import LiveGateway, sse_frames, upstream_chats

MODEL = "grok-3-fast"
ANSWER = "Hello! You said: hi"
# The thinking header and lines: a header frame over REST, the notetaker channel then another one over the socket.
REASONING = {
    "ws": "Thinking about your request\n\nLet me think about this.",
    "rest": "\n\nThinking about your request\n\nLet me think about this.",
}
WEB_SOURCES = (
    '\n- [First result](https://example.com/fake-grok/first "A preview that spans two lines.")'
    '\n- [Second result](https://example.org/fake-grok/second "Another preview.")\n'
)
X_POST_URL = f"https://x.com/{X_POST['userhandle']}/status/{X_POST['post_id']}"
# Over the socket an X search runs beside the web search.
SOURCES = {"ws": WEB_SOURCES + f'\n- [Fake Grok]({X_POST_URL} "A post about it.")\n', "rest": WEB_SOURCES}
CITED = f"Hello! [[1]]({SEARCH_RESULTS[0]['url']})You said: hi"
ERROR_KEYS = {"message", "type", "param", "code"}
IMAGE_LINK = re.compile(r"!\[Generated Image\]\(([^)]+)\)")


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def extra(obj: Any, name: str) -> Any:
    """A field the SDK does not model (reasoning_content) from a message or delta."""
    return (obj.model_extra or {}).get(name)


async def create(client: openai.AsyncOpenAI, text: str, **kwargs: Any) -> ChatCompletion:
    resp = await client.chat.completions.create(model=kwargs.pop("model", MODEL), messages=user(text), **kwargs)
    assert isinstance(resp, ChatCompletion)
    return resp


async def chunks(client: openai.AsyncOpenAI, text: str, **kwargs: Any) -> list[ChatCompletionChunk]:
    stream = await client.chat.completions.create(
        model=kwargs.pop("model", MODEL), messages=user(text), stream=True, **kwargs
    )
    return [chunk async for chunk in stream]


def content_of(items: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in items if c.choices)


def reasoning_of(items: list[ChatCompletionChunk]) -> str:
    return "".join(extra(c.choices[0].delta, "reasoning_content") or "" for c in items if c.choices)


def finish_of(items: list[ChatCompletionChunk]) -> list[str]:
    return [c.choices[0].finish_reason for c in items if c.choices and c.choices[0].finish_reason]


async def post_raw(gateway: LiveGateway, body: bytes | dict[str, Any], **headers: str) -> tuple[int, str, bytes]:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/chat/completions", data=data, headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def get_raw(gateway: LiveGateway, path: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}{path}") as resp:
        return resp.status, await resp.read()


def answer_text(chunk_event: dict[str, Any]) -> str:
    """The answer text a ``response.chunk`` event carries ("" for thinking, cards and the rest)."""
    text = chunk_event["chunk"].get("text") or {}
    return str(text.get("text", "")) if text.get("channel") == "CHANNEL_ASSISTANT_RESPONSE" else ""


def error_of(raw: bytes) -> dict[str, Any]:
    body = msgspec.json.decode(raw)
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


# ---- answers -----------------------------------------------------------------------------------


async def test_non_stream(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi")
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == MODEL
    (choice,) = resp.choices
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    assert choice.message.content == ANSWER
    assert extra(choice.message, "reasoning_content") is None
    usage = resp.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if chat_transport == "ws":
        assert fake.chat_calls() == []
        (session,) = fake.mgw_sessions("tok1")
        assert (session.mode, session.input_chunks, session.refused) == ("fast", [{"text": {"text": "hi"}}], None)
        assert session.x_grok["use_chunk"] is True  # the chunk family, whose channels tell thinking from answer
        flags = {k: session.x_grok.get(k) for k in ("is_temporary", "disable_memory", "keep_context")}
        assert flags == {"is_temporary": True, "disable_memory": True, "keep_context": False}
        assert session.uid == fake.user_id("tok1")  # from /api/auth/session
        assert [e["response"]["status"] for e in session.sent_events("response.done")] == ["completed"]
        assert "error" not in session.sent_types()
        async with asyncio.timeout(5):  # one socket per turn, closed once the answer is sent
            while not session.closed:
                await asyncio.sleep(0.01)
    else:
        assert fake.mgw_sessions() == []
        (call,) = fake.chat_calls("tok1")
        assert (call.json["modeId"], call.json["message"], call.json["fileAttachments"]) == ("fast", "hi", [])
        assert (call.json["temporary"], call.json["disableMemory"]) == (True, True)
        assert "modelName" not in call.json and "modelMode" not in call.json  # grok.com refuses the 2025 body

    # With temporary off the chat stays in the account's Grok history (and memory is left on).
    await gateway.settings(temporary=False)
    assert (await create(client, "hi")).choices[0].message.content == ANSWER
    kept = upstream_chats(fake)[-1]
    assert (kept.transport, kept.temporary, kept.memory) == (chat_transport, False, True)
    if chat_transport == "ws":
        session = fake.mgw_sessions()[-1]
        assert "keep_context" not in session.x_grok and "disable_memory" not in session.x_grok
        assert "conversation.title.updated" in session.sent_types()  # grok.com keeps (and names) the chat
        assert len([r for r in fake.requests if r.path == SESSION_PATH]) == 1  # the identity is asked for once


async def test_stream_with_the_sdk_and_usage(
    gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    items = await chunks(client, "hi")
    assert len(items) >= 4
    assert len({c.id for c in items}) == 1 and items[0].id.startswith("chatcmpl-")
    assert {c.model for c in items} == {MODEL}
    assert all(c.object == "chat.completion.chunk" for c in items)
    assert all(len(c.choices) == 1 and c.choices[0].index == 0 for c in items)
    first, last = items[0].choices[0], items[-1].choices[0]
    assert first.delta.role == "assistant" and not first.delta.content and first.finish_reason is None
    assert last.finish_reason == "stop" and last.delta.content is None
    assert all(c.choices[0].finish_reason is None for c in items[:-1])
    assert all(c.choices[0].delta.role is None for c in items[1:])
    assert content_of(items) == ANSWER
    assert len([c for c in items if c.choices[0].delta.content]) > 1  # really streamed, not one lump
    assert all(c.usage is None for c in items)

    # usage only when asked for: one last chunk without choices
    items = await chunks(client, "hi", stream_options={"include_usage": True})
    *body, usage_chunk = items
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens > 0 and usage_chunk.usage.completion_tokens > 0
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens
    assert usage_chunk.id == body[0].id
    assert body[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in body)
    assert content_of(body) == ANSWER
    plain = await chunks(client, "hi", stream_options={"include_usage": False})
    assert all(c.usage is None and c.choices for c in plain)


async def test_stream_raw_sse(gateway: LiveGateway, chat_transport: str) -> None:
    await gateway.add_accounts("tok1")
    status, ctype, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi"), "stream": True})
    assert status == 200
    assert ctype.startswith("text/event-stream")
    frames = sse_frames(raw)
    assert frames[-1] == "[DONE]"
    objs = [msgspec.json.decode(f) for f in frames[:-1]]
    assert len({o["id"] for o in objs}) == 1
    assert len({o["created"] for o in objs}) == 1
    assert objs[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}
    ]
    assert objs[-1]["choices"][0]["delta"] == {} and objs[-1]["choices"][0]["finish_reason"] == "stop"
    middle = objs[1:-1]
    assert middle and all(set(o["choices"][0]["delta"]) == {"content"} for o in middle)
    assert "".join(o["choices"][0]["delta"]["content"] for o in middle) == ANSWER
    assert all("usage" not in o for o in objs)


async def test_model_is_the_requested_id_and_picks_the_mode(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, chat_transport: str
) -> None:
    fake.set_tier("tok1", "super")  # expert needs a super account (the gateway learns the tier from its windows)
    await gateway.add_accounts("tok1", tier="super")
    resp = await create(client, "hi", model="grok-4-fast")
    assert resp.model == "grok-4-fast"
    streamed = await chunks(client, "hi", model="grok-4.1")
    assert {c.model for c in streamed} == {"grok-4.1"}
    assert content_of(streamed) == ANSWER
    resp = await create(client, "hi", model="grok-expert")
    assert (resp.model, resp.choices[0].message.content) == ("grok-expert", ANSWER)
    if chat_transport == "ws":
        assert extra(resp.choices[0].message, "reasoning_content")  # the expert mode always thinks
    assert [(c.transport, c.mode) for c in upstream_chats(fake)] == [
        (chat_transport, "auto"),  # grok-4-fast is an alias of grok-auto
        (chat_transport, "fast"),  # grok-4.1 of grok-fast
        (chat_transport, "expert"),
    ]


async def test_conversation_with_null_assistant_content(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok1")
    resp = await client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "again"},
        ],
    )
    assert resp.choices[0].message.content
    (session,) = fake.mgw_sessions()
    assert session.input_chunks == [{"text": {"text": "System: Be brief.\n\nUser: hello\n\nUser: again"}}]


async def test_null_for_optional_fields_means_absent(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": None}}
    messages = [
        {"role": "system", "name": None, "content": "Be brief."},
        {"role": "user", "name": None, "content": [{"type": "text", "text": "look"}, image]},
        {
            "role": "assistant",
            "name": None,
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": None, "content": "42"},
    ]
    for stream in (False, True):
        body = {
            "model": MODEL,
            "messages": messages,
            "user": None,
            "stream": stream,
            "n": None,
            "max_tokens": None,
            "temperature": None,
            "stream_options": {"include_usage": None},
        }
        status, _, raw = await post_raw(gateway, body)
        assert status == 200, raw
    assert [len(c.file_ids) for c in upstream_chats(fake)] == [1, 1]  # the image went along both times


async def test_legacy_function_role_and_refusal_parts_are_history(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok1")
    messages: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": "{}"}},
        {"role": "function", "name": "weather", "content": "sunny"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot say more."}]},
        {"role": "user", "content": "ok"},
    ]
    resp = await client.chat.completions.create(model=MODEL, messages=messages)
    assert resp.choices[0].message.content
    (chat,) = upstream_chats(fake)
    assert chat.message == (
        'User: weather?\n\nTool: <tool_result name="weather">sunny</tool_result>\n\n'
        "Assistant: I cannot say more.\n\nUser: ok"
    )


async def test_deeply_nested_body_is_400_not_500(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    depth = 100_000
    raw = b'{"model": "grok-3-fast", "messages": [{"role": "user", "content": "hi"}], "metadata": '
    status, ctype, body = await post_raw(gateway, raw + b"[" * depth + b"]" * depth + b"}")
    assert (status, ctype) == (400, "application/json")
    err = error_of(body)
    assert (err["type"], err["code"]) == ("invalid_request_error", "invalid_json")
    assert "nested" in err["message"] and "Recursion" not in err["message"]
    assert upstream_chats(fake) == []


# ---- reasoning, search, citations, filtered tags -------------------------------------------------


async def test_reasoning_content_or_think_tags(
    gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi [[think]]")
    message = resp.choices[0].message
    assert extra(message, "reasoning_content") == REASONING[chat_transport]
    assert message.content == ANSWER

    items = await chunks(client, "hi [[think]]")
    assert reasoning_of(items) == REASONING[chat_transport]
    assert content_of(items) == ANSWER
    # every reasoning delta comes before the first content delta
    order = ""
    for c in items:
        delta = c.choices[0].delta
        order += "r" if extra(delta, "reasoning_content") else ("c" if delta.content else "")
    assert order.startswith("r") and "rc" in order and "cr" not in order

    await gateway.settings(think_format="think_tags")  # reasoning inside <think>…</think> in content instead
    expected = f"<think>\n{REASONING[chat_transport]}\n</think>\n{ANSWER}"
    resp = await create(client, "hi [[think]]")
    assert resp.choices[0].message.content == expected
    assert extra(resp.choices[0].message, "reasoning_content") is None
    items = await chunks(client, "hi [[think]]")
    assert content_of(items) == expected
    assert reasoning_of(items) == ""


async def test_show_thinking_false_drops_reasoning(
    gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    for think_format in ("reasoning_content", "think_tags"):
        await gateway.settings(show_thinking=False, think_format=think_format)
        resp = await create(client, "hi [[think]] [[search]]")
        assert resp.choices[0].message.content == ANSWER, think_format
        assert extra(resp.choices[0].message, "reasoning_content") is None, think_format
        items = await chunks(client, "hi [[think]] [[search]]")
        assert (content_of(items), reasoning_of(items)) == (ANSWER, ""), think_format


async def test_web_search_as_a_markdown_source_list(
    gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    assert [r["url"] for r in SEARCH_RESULTS] == [
        "https://example.com/fake-grok/first",
        "https://example.org/fake-grok/second",
    ]
    resp = await create(client, "hi [[search]]")
    assert extra(resp.choices[0].message, "reasoning_content") == SOURCES[chat_transport]
    assert resp.choices[0].message.content == ANSWER
    items = await chunks(client, "hi [[search]]")
    assert reasoning_of(items) == SOURCES[chat_transport]

    await gateway.settings(think_format="think_tags")
    resp = await create(client, "hi [[search]]")
    assert resp.choices[0].message.content == f"<think>\n{SOURCES[chat_transport]}\n</think>\n{ANSWER}"


async def test_citations_are_inline_links(
    gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    """A ``render_citation`` chunk (socket) or a ``<grok:render>`` tag with its card (REST) becomes ``[[n]](url)``,
    never a raw tag, whether or not grok:render is a filtered tag."""
    await gateway.add_accounts("tok1")
    for filtered in (RuntimeSettings().filtered_tags, ""):
        await gateway.settings(filtered_tags=filtered)
        resp = await create(client, "hi [[cite]]")
        assert resp.choices[0].message.content == CITED, filtered
        assert content_of(await chunks(client, "hi [[cite]]")) == CITED, filtered


async def test_a_render_tag_resolved_by_its_card_is_an_inline_link(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    """Over the socket: ``<grok:render card_id=…>`` in the text, its URL in a ``card_attachment`` (plain, or in a
    ``jsonData`` string) → ``[[1]](url)``, without the tag or the card id, even with nothing filtered."""
    await gateway.add_accounts("tok1")
    await gateway.settings(filtered_tags="")
    for card_json in (False, True):
        prompt = "hi [[cite-card]]" + (" [[card-json]]" if card_json else "")
        assert (await create(client, prompt)).choices[0].message.content == CITED, prompt
        assert content_of(await chunks(client, prompt)) == CITED, prompt
        # The fake really sent the tag and the card, not a render_citation chunk.
        session = fake.mgw_sessions()[-1]
        sent = session.sent_events("response.chunk")
        assert any('<grok:render card_id="k9"' in answer_text(c) for c in sent), prompt
        assert not any("render_citation" in c["chunk"] for c in sent), prompt
        cards = [e["output"]["card_attachment"] for e in session.sent_events("response.grok.output")]
        assert cards and ("jsonData" in cards[0]) is card_json, prompt


async def test_web_and_x_citations_are_numbered_in_order(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi [[search]] [[cite]]")
    assert resp.choices[0].message.content == (
        f"Hello! [[1]]({SEARCH_RESULTS[0]['url']})[[2]]({X_POST_URL})You said: hi"
    )


ARTIFACT = "<xaiArtifact>print(1)</xaiArtifact>"


async def test_filtered_tags_in_both_modes(
    gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    # The answer echoes the end of the prompt, so the artifact arrives split over several answer tokens.
    await gateway.add_accounts("tok1")
    expected = "Hello! You said: ok"
    resp = await create(client, f"ok {ARTIFACT}")
    assert resp.choices[0].message.content == expected
    streamed = content_of(await chunks(client, f"ok {ARTIFACT}"))
    assert streamed.strip() == expected
    for text in (resp.choices[0].message.content or "", streamed):
        assert "xaiartifact" not in text.lower() and "print(1)" not in text
    if chat_transport == "rest":  # an artifact as grok.com's REST answer sends one
        assert (await create(client, "hi [[artifact]]")).choices[0].message.content == ANSWER + " Code:"

    await gateway.settings(filtered_tags="")  # nothing filtered: the artifact comes through untouched
    assert (await create(client, f"ok {ARTIFACT}")).choices[0].message.content == f"{expected} {ARTIFACT}"


async def test_filtered_tags_setting_is_case_insensitive(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(filtered_tags="XAIARTIFACT")
    resp = await create(client, f"ok {ARTIFACT}")
    assert resp.choices[0].message.content == "Hello! You said: ok"
    streamed = content_of(await chunks(client, f"ok {ARTIFACT}"))
    assert "<xaiArtifact" not in streamed and streamed.startswith("Hello! You said: ok")


# ---- what else an answer carries -----------------------------------------------------------------


async def test_images_drawn_in_chat_are_linked(
    gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "[[draw]] a red fox")
    links = IMAGE_LINK.findall(resp.choices[0].message.content or "")
    assert len(links) == 2 and len(set(links)) == 2
    assert "Generating image 2: 100%" in extra(resp.choices[0].message, "reasoning_content")
    for link in links:
        assert (await get_raw(gateway, link)) == (200, TINY_JPEG)
    items = await chunks(client, "[[draw]] a red fox")
    assert len(IMAGE_LINK.findall(content_of(items))) == 2 and finish_of(items) == ["stop"]


async def test_stop_and_max_tokens(gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi", stop=["said"])
    assert (resp.choices[0].message.content, resp.choices[0].finish_reason) == ("Hello! You", "stop")
    items = await chunks(client, "hi", stop="You")
    assert (content_of(items), finish_of(items)) == ("Hello! ", ["stop"])

    resp = await create(client, "[[tokens:50]] long", max_tokens=3)
    content = resp.choices[0].message.content or ""
    assert resp.choices[0].finish_reason == "length" and 0 < len(content.encode()) <= 12
    assert resp.usage is not None and resp.usage.completion_tokens <= 3
    items = await chunks(client, "[[tokens:50]] long", max_completion_tokens=2)
    assert finish_of(items) == ["length"] and 0 < len(content_of(items).encode()) <= 8


async def test_a_delta_family_answer_renders_once(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session without ``use_chunk`` gets its text as ``response.output_text.delta`` (thinking flagged
    ``is_thinking``, tool cards as ``response.grok.output``, results also as ``response.search.result``, and a
    closing ``output_text.done``): the same answer, nothing doubled."""
    plain = mgw.session_create

    def without_use_chunk(mode: str, settings: RuntimeSettings) -> dict[str, Any]:
        event = plain(mode, settings)
        del event["event"]["session"]["x_grok"]["use_chunk"]
        return event

    monkeypatch.setattr(mgw, "session_create", without_use_chunk)
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi [[think]] [[search]] [[cite]]")
    assert resp.choices[0].message.content == CITED
    reasoning = extra(resp.choices[0].message, "reasoning_content")
    # the sources once each, though the results came both as tool_result outputs and as search results
    assert reasoning == f"Thinking about your request{SOURCES['ws']}Let me think about this."
    items = await chunks(client, "hi [[think]] [[search]] [[cite]]")
    assert content_of(items) == CITED and reasoning_of(items) == reasoning
    session = fake.mgw_sessions()[-1]
    assert "use_chunk" not in session.x_grok
    assert "response.output_text.delta" in session.sent_types() and "response.search.result" in session.sent_types()
    assert not any("text" in c["chunk"] for c in session.sent_events("response.chunk"))


async def test_unknown_shapes_are_counted_in_metrics(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    """Event types, chunk kinds and channels the parser does not know are skipped (never shown) and counted."""

    async def counts() -> dict[str, int]:
        status, raw = await get_raw(gateway, "/metrics")
        assert status == 200
        found = re.findall(r'^grok2api_upstream_unknown_total\{type="([^"]+)"\} (\d+)$', raw.decode(), re.MULTILINE)
        return {name: int(n) for name, n in found}

    await gateway.add_accounts("tok1")
    before = await counts()
    resp = await create(client, "hi [[fault:unknown]]")
    assert resp.choices[0].message.content == ANSWER
    assert extra(resp.choices[0].message, "reasoning_content") is None  # the unknown channel's text is not shown
    after = await counts()
    for name in (f"event:{UNKNOWN_EVENT}", f"chunk:{UNKNOWN_CHUNK}", f"channel:{UNKNOWN_CHANNEL}"):
        assert after.get(name, 0) == before.get(name, 0) + 1, name


# ---- errors ------------------------------------------------------------------------------------


async def test_unknown_model_is_404(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    with pytest.raises(openai.NotFoundError) as info:
        await create(client, "hi", model="gpt-4o")
    assert info.value.status_code == 404
    assert (info.value.code, info.value.param, info.value.type) == ("model_not_found", "model", "invalid_request_error")
    assert "gpt-4o" in info.value.message
    assert upstream_chats(fake) == []


async def test_malformed_json_is_400(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    status, ctype, raw = await post_raw(
        gateway, b'{"model": "grok-3-fast", "messages": [', **{"Content-Type": "application/json"}
    )
    assert status == 400 and ctype == "application/json"
    err = error_of(raw)
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", "invalid_json", None)


SCHEMA_VIOLATIONS: list[tuple[dict[str, Any], str]] = [
    ({"model": MODEL, "messages": user("x"), "temperature": 5}, "temperature"),
    ({"model": MODEL, "messages": user("x"), "top_p": -0.1}, "top_p"),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": [{"content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": []}, "messages"),
    ({"model": MODEL, "messages": "hello"}, "messages"),
    ({"messages": user("x")}, "model"),
    ({"model": MODEL, "messages": user("x"), "stream": "yes"}, "stream"),
    ({"model": MODEL, "messages": user("x"), "n": 2}, "n"),
    ({"model": MODEL, "messages": user("x"), "max_tokens": 0}, "max_tokens"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"model": MODEL, "messages": user("   ")}, "messages"),
]


async def test_schema_violations_name_the_param(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    for body, param in SCHEMA_VIOLATIONS:
        status, _, raw = await post_raw(gateway, body)
        assert status == 400, body
        err = error_of(raw)
        assert (err["type"], err["param"]) == ("invalid_request_error", param), body
        assert "Traceback" not in err["message"] and "msgspec" not in err["message"]
    assert upstream_chats(fake) == []


async def test_n_2_with_the_sdk(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    with pytest.raises(openai.BadRequestError) as info:
        await create(client, "hi", n=2)
    assert info.value.param == "n"
    assert (await create(client, "hi", n=1)).choices[0].message.content == ANSWER


async def test_bodies_of_the_wrong_shape_are_400(gateway: LiveGateway) -> None:
    for body in (b"", b"null", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"model": 5}'):
        status, _, raw = await post_raw(gateway, body)
        assert status == 400, body
        assert error_of(raw)["type"] == "invalid_request_error", body


async def test_api_key(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    body = {"model": MODEL, "messages": user("hi")}
    # off: no header and any header are both fine
    assert (await post_raw(gateway, body))[0] == 200
    assert (await create(client, "hi")).choices[0].message.content == ANSWER

    await gateway.settings(api_key="sk-test")
    status, _, raw = await post_raw(gateway, body)
    assert status == 401 and error_of(raw)["code"] == "missing_api_key"
    status, _, raw = await post_raw(gateway, body, Authorization="Basic c2stdGVzdA==")
    assert status == 401 and error_of(raw)["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError) as info:
        await create(client, "hi")  # the fixture's client sends "not-needed"
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    assert "not-needed" not in info.value.message

    authed = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0, timeout=30)
    try:
        assert (await create(authed, "hi")).choices[0].message.content == ANSWER
        assert content_of(await chunks(authed, "hi")) == ANSWER
    finally:
        await authed.close()


async def test_no_accounts_is_503(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await create(client, "hi")
    assert info.value.status_code == 503
    assert info.value.code == "no_available_account"
    assert "add" in info.value.message.lower() and "account" in info.value.message.lower()
    status, _, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi"), "stream": True})
    assert status == 503 and error_of(raw)["code"] == "no_available_account"
    assert upstream_chats(fake) == []


async def test_upstream_failure_is_502(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, chat_transport: str
) -> None:
    # Over the socket grok.com refuses the handshake with the status; over REST it answers the POST with it.
    await gateway.add_accounts("tok1", "tok2")
    fake.push_fault("500", count=2)
    with pytest.raises(openai.APIStatusError) as info:
        await create(client, "hi")
    assert info.value.status_code == 502
    assert (info.value.type, info.value.code) == ("upstream_error", "upstream_error")
    assert "500" in info.value.message
    chats = upstream_chats(fake)
    assert sorted(c.token or "" for c in chats) == ["tok1", "tok2"]  # both accounts were tried
    if chat_transport == "ws":
        assert [c.refused for c in chats] == [500, 500]
    fake.push_fault("502", count=2)
    status, _, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi"), "stream": True})
    assert status == 502 and error_of(raw)["type"] == "upstream_error"


async def test_an_empty_answer_is_retried_on_another_account(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, chat_transport: str
) -> None:
    """An answer that completes without text or images (grok.com's way with throttled accounts) fails over to
    another account before the first byte, so the client sees only the good answer."""
    await gateway.add_accounts("tok1", "tok2")
    fake.push_fault("empty")
    assert (await create(client, "hi")).choices[0].message.content == ANSWER
    fake.push_fault("empty")
    items = await chunks(client, "hi")
    assert content_of(items) == ANSWER and finish_of(items) == ["stop"]
    chats = upstream_chats(fake)
    assert len(chats) == 4
    for empty, good in (chats[0:2], chats[2:4]):
        assert empty.token != good.token and empty.message == good.message == "hi"
    if chat_transport == "ws":
        completed = [s.sent_events("response.done")[0]["response"]["status"] for s in fake.mgw_sessions()]
        texts = [[c for c in s.sent_events("response.chunk") if answer_text(c)] for s in fake.mgw_sessions()]
        assert completed == ["completed"] * 4  # the empty ones completed too, just without any text
        assert [bool(t) for t in texts] == [False, True, False, True]


async def test_failures_mid_answer(gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str) -> None:
    await gateway.add_accounts("tok1")
    status, _, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi [[fault:reset]]")})
    assert status == 502
    err = error_of(raw)
    assert err["type"] == "upstream_error" and "mid-answer" in err["message"]

    await gateway.add_accounts("tok2")
    stream = await client.chat.completions.create(model=MODEL, messages=user("hi [[fault:reset]]"), stream=True)
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError, match="mid-answer"):
        async for chunk in stream:
            seen.append(chunk)
    assert content_of(seen).startswith("Hello!")

    # a usage limit reported mid-answer is a 429
    status, _, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi [[fault:inband-8]]")})
    assert status == 429
    err = error_of(raw)
    assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/chat/completions", 405), ("POST", "/v1/nope", 404), ("PUT", "/v1/models", 405)],
)
async def test_routing_errors_use_the_envelope(gateway: LiveGateway, method: str, path: str, status: int) -> None:
    async with aiohttp.ClientSession() as http, http.request(method, f"{gateway.url}{path}") as resp:
        assert resp.status == status
        error_of(await resp.read())


# What each upstream fault becomes for the client. Faults before the first byte keep their status in both
# modes; faults after it are an error event + [DONE] in a stream (None: the answer completes normally).
# Over the socket the status faults refuse the handshake, and the REST-only ones stand for their socket
# namesakes (reset: the connection cut; model-error, stream-errors: a stream_error output).
FAULTS: dict[str, tuple[int, str | None]] = {
    "401": (502, "upstream_error"),
    "403-blocked": (502, "upstream_error"),
    "403-antibot": (502, "egress_blocked"),
    "403-cf": (502, "egress_blocked"),
    "429": (429, "rate_limit_exceeded"),
    "500": (502, "upstream_error"),
    "502": (502, "upstream_error"),
    "503": (502, "upstream_error"),
    "empty": (502, "upstream_error"),
    "inband-8": (429, "rate_limit_exceeded"),
    "inband-usage": (429, "rate_limit_exceeded"),
    "inband-13": (502, "upstream_error"),
    "model-error": (502, "upstream_error"),
    "stream-errors": (502, "upstream_error"),
    "reset": (502, "upstream_error"),
    "malformed": (200, None),
    "blank": (200, None),
    "multi-json": (200, None),
    "long-line": (200, None),
    "trickle:0.01": (200, None),
}
# Per transport: what a REST answer without its final modelResponse becomes (it stands for a session that ends
# before response.done over the socket), and the socket's own faults.
TRANSPORT_FAULTS: dict[str, dict[str, tuple[int, str | None]]] = {
    "rest": {"no-model-response": (200, None)},
    "ws": {
        "no-model-response": (502, "upstream_error"),
        "mgw-antibot": (502, "egress_blocked"),
        "mgw-usage": (429, "rate_limit_exceeded"),
        "mgw-stream-error": (502, "upstream_error"),
        "mgw-failed": (502, "upstream_error"),
        "mgw-session-ended": (502, "upstream_error"),
        "mgw-close": (502, "upstream_error"),
        "mgw-unknown": (200, None),
    },
}
MID_ANSWER = {"inband-8", "inband-usage", "inband-13", "model-error", "stream-errors", "reset"} | {
    "no-model-response",
    "mgw-usage",
    "mgw-stream-error",
    "mgw-failed",
    "mgw-session-ended",
    "mgw-close",
}


def streamed_content(frames: list[str]) -> str:
    """The content deltas of an SSE body's frames (error frames have no choices)."""
    objs = [msgspec.json.decode(f) for f in frames if f != "[DONE]"]
    return "".join(c["delta"].get("content") or "" for o in objs for c in o.get("choices", []))


async def test_every_upstream_fault_maps_to_a_clean_answer(
    gateway: LiveGateway, fake: FakeGrok, chat_transport: str
) -> None:
    await gateway.settings(max_attempts=1)
    faults = {**FAULTS, **TRANSPORT_FAULTS[chat_transport]}
    for n, (stream, (fault, (status, code))) in enumerate((s, f) for s in (False, True) for f in faults.items()):
        case = f"{fault} ({'sse' if stream else 'json'})"
        await gateway.add_accounts(f"fault-{n}")  # a fresh account: earlier faults may have cooled or blocked one
        fake.push_fault(fault)  # taken by the next chat, whichever account serves it
        got, ctype, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi"), "stream": stream})
        assert fake.take_fault("chat", None) is None and fake.take_fault("mgw", None) is None, case  # it struck
        if stream and (status == 200 or fault in MID_ANSWER):
            assert got == 200, case
            frames = sse_frames(raw)
            assert frames[-1] == "[DONE]", case
            assert streamed_content(frames).startswith("Hello!"), case  # what came before a fault was sent
            last = msgspec.json.decode(frames[-2])
            if code is None:
                assert last["choices"][0]["finish_reason"] == "stop", case
            else:
                assert last["error"]["code"] == code and set(last["error"]) == ERROR_KEYS, case
        elif status == 200:
            assert got == 200, case
            assert msgspec.json.decode(raw)["choices"][0]["message"]["content"].startswith("Hello!"), case
        else:
            assert (got, ctype) == (status, "application/json"), case
            assert error_of(raw)["code"] == code, case

"""POST /v1/responses (and GET/DELETE /v1/responses/{id}) end to end: the official openai SDK against the real
app under hypercorn and the fake grok.com. The core answers run over both ways a chat reaches grok.com (the tests
that take ``chat_transport``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import aiohttp
import msgspec
import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseStreamEvent,
)

from grok2api.client_keys import hash_key
from grok2api.conversation import ToolCall
from grok2api.conversation.instructions import call_block, result_block
from grok2api.store.base import ClientKey
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway, clean_mysql, drop_redis_prefix, requires, upstream_chats

MODEL = "grok-3-fast"
ANSWER = "Hello! You said: hi"
REASONING = "Thinking about your request\n\nLet me think about this."
ERROR_KEYS = {"message", "type", "param", "code"}
STALL = 30  # seconds the fake stalls; the gateway's idle timeout cuts it long before


async def create(client: openai.AsyncOpenAI, input: Any = "hi", **kwargs: Any) -> Response:
    resp = await client.responses.create(model=kwargs.pop("model", MODEL), input=input, **kwargs)
    assert isinstance(resp, Response)
    return resp


def stored_flag(resp: Response) -> Any:
    """``store`` as echoed (a field the SDK does not model)."""
    return (resp.model_extra or {}).get("store")


async def events(client: openai.AsyncOpenAI, input: Any = "hi", **kwargs: Any) -> list[ResponseStreamEvent]:
    stream = await client.responses.create(model=kwargs.pop("model", MODEL), input=input, stream=True, **kwargs)
    return [event async for event in stream]


def types_of(items: list[ResponseStreamEvent]) -> list[str]:
    return [e.type for e in items]


async def post_raw(
    gateway: LiveGateway, body: bytes | dict[str, Any], path: str = "/v1/responses"
) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    async with aiohttp.ClientSession() as http, http.post(f"{gateway.url}{path}", data=data) as resp:
        return resp.status, await resp.read()


def error_of(raw: bytes) -> dict[str, Any]:
    body = msgspec.json.decode(raw)
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def last_message(fake: FakeGrok) -> str:
    return upstream_chats(fake)[-1].message


# ---- answers -------------------------------------------------------------------------------------


async def test_non_stream(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, metadata={"ticket": "42"}, temperature=0.2)
    assert resp.id.startswith("resp_") and resp.object == "response"
    assert (resp.status, resp.model, resp.error, resp.incomplete_details) == ("completed", MODEL, None, None)
    assert resp.output_text == ANSWER
    (message,) = resp.output
    assert isinstance(message, ResponseOutputMessage)
    assert (message.role, message.status, message.id[:4]) == ("assistant", "completed", "msg_")
    assert [(p.type, p.text) for p in message.content if p.type == "output_text"] == [("output_text", ANSWER)]
    usage = resp.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert (resp.metadata, resp.temperature, stored_flag(resp), resp.tools, resp.tool_choice) == (
        {"ticket": "42"},
        0.2,
        True,
        [],
        "auto",
    )
    assert resp.completed_at is not None and resp.completed_at >= resp.created_at
    assert last_message(fake) == "hi"


async def test_stream_event_sequence(gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str) -> None:
    await gateway.add_accounts("tok1")
    items = await events(client)
    kinds = types_of(items)
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-5:] == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"} and len(kinds[4:-4]) > 1  # really streamed
    assert [e.sequence_number for e in items] == list(range(len(items)))
    created, completed = items[0], items[-1]
    assert created.type == "response.created" and completed.type == "response.completed"
    assert (created.response.status, created.response.output) == ("in_progress", [])
    assert completed.response.id == created.response.id
    assert (completed.response.status, completed.response.output_text) == ("completed", ANSWER)
    deltas = [e for e in items if e.type == "response.output_text.delta"]
    assert "".join(e.delta for e in deltas) == ANSWER
    (done,) = [e for e in items if e.type == "response.output_text.done"]
    item_id = completed.response.output[0].id
    assert done.text == ANSWER and {e.item_id for e in deltas} == {done.item_id} == {item_id}
    assert {(e.output_index, e.content_index) for e in deltas} == {(0, 0)}
    assert completed.response.usage is not None and completed.response.usage.output_tokens > 0


async def test_the_stream_helper_builds_the_final_response(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    seen: list[str] = []
    async with client.responses.stream(model=MODEL, input="hi [[think]]") as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                seen.append(event.snapshot)
        final = await stream.get_final_response()
    assert final.output_text == ANSWER and final.status == "completed"
    assert seen[-1] == ANSWER and len(seen) > 1  # the helper's running snapshot of the text
    reasoning, message = final.output
    assert isinstance(reasoning, ResponseReasoningItem) and isinstance(message, ResponseOutputMessage)


async def test_raw_stream_names_each_event(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    status, raw = await post_raw(gateway, {"model": MODEL, "input": "hi", "stream": True})
    assert status == 200
    text = raw.decode()
    assert text.endswith("\n\n") and "[DONE]" not in text
    for frame in text[:-2].split("\n\n"):
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        assert msgspec.json.decode(data_line[len("data: ") :])["type"] == event_line[len("event: ") :]


async def test_reasoning_is_a_reasoning_item_with_a_summary(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi [[think]]", reasoning={"effort": "high", "summary": "auto"})
    reasoning, message = resp.output
    assert isinstance(reasoning, ResponseReasoningItem) and reasoning.id.startswith("rs_")
    assert [(s.type, s.text) for s in reasoning.summary] == [("summary_text", REASONING)]
    assert isinstance(message, ResponseOutputMessage) and resp.output_text == ANSWER
    assert resp.reasoning is not None and (resp.reasoning.effort, resp.reasoning.summary) == ("high", "auto")
    assert resp.usage is not None and resp.usage.output_tokens_details.reasoning_tokens > 0

    items = await events(client, "hi [[think]]")
    kinds = types_of(items)
    first_text = kinds.index("response.output_item.added", 3)
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    assert kinds[first_text - 3 : first_text] == [
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    deltas = [e.delta for e in items if e.type == "response.reasoning_summary_text.delta"]
    assert "".join(deltas) == REASONING
    completed = items[-1]
    assert completed.type == "response.completed"
    assert [o.type for o in completed.response.output] == ["reasoning", "message"]
    text_deltas = [e for e in items if e.type == "response.output_text.delta"]
    assert {e.output_index for e in text_deltas} == {1}

    await gateway.settings(show_thinking=False)
    resp = await create(client, "hi [[think]]")
    assert [o.type for o in resp.output] == ["message"] and resp.output_text == ANSWER


async def test_instructions_and_input_items_become_the_prompt(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok1")
    items: Any = [
        {"role": "developer", "content": "Answer in English."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is on this picture?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
            ],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "A cat.", "annotations": []}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "old thoughts"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    resp = await create(client, items, instructions="Be brief.")
    assert resp.output_text and resp.instructions == "Be brief."
    chat = upstream_chats(fake)[-1]
    call = call_block(ToolCall(id="call_1", name="weather", arguments='{"city":"Paris"}'))
    assert chat.message == (
        "System: Be brief.\n\nSystem: Answer in English.\n\nUser: What is on this picture?\n[image 1]\n\n"
        f"Assistant: A cat.\n{call}\n\nTool: {result_block('call_1', 'weather', 'sunny')}\n\nUser: thanks"
    )
    assert "old thoughts" not in chat.message  # earlier reasoning is not sent again
    assert len(chat.file_ids) == 1  # the image was uploaded


async def test_max_output_tokens_makes_an_incomplete_response(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "[[tokens:60]]", max_output_tokens=5)
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None and resp.incomplete_details.reason == "max_output_tokens"
    assert resp.max_output_tokens == 5
    assert 0 < len(resp.output_text.encode()) <= 20 and resp.output_text.startswith("tok0")
    (message,) = resp.output
    assert isinstance(message, ResponseOutputMessage) and message.status == "incomplete"

    items = await events(client, "[[tokens:60]]", max_output_tokens=5)
    last = items[-1]
    assert last.type == "response.incomplete" and "response.completed" not in types_of(items)
    assert last.response.output_text == resp.output_text


async def test_a_stall_mid_answer_fails_the_response(
    gateway: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_chunk_timeout=0.5)
    items = await events(client, f"hi [[fault:stall-mid:{STALL}]]")
    kinds = types_of(items)
    assert "response.output_text.delta" in kinds  # part of the answer went out first
    assert kinds[-1] == "response.failed" and "response.completed" not in kinds
    failed = items[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed" and failed.response.error is not None
    assert "stalled" in failed.response.error.message
    (message,) = failed.response.output
    assert isinstance(message, ResponseOutputMessage) and message.status == "incomplete"
    assert failed.response.output_text == "Hello! You "

    with pytest.raises(openai.APIStatusError) as caught:
        await create(client, f"hi [[fault:stall-mid:{STALL}]]")
    assert caught.value.status_code == 504
    # A failed response is not kept: it cannot be fetched or continued.
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(failed.response.id)


# ---- stored responses ----------------------------------------------------------------------------


async def test_previous_response_id_replays_the_conversation(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1")
    first = await create(client, "first question", instructions="Only for the first turn.")
    second = await create(client, "second question", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.id != first.id
    assert last_message(fake) == (f"User: first question\n\nAssistant: {first.output_text}\n\nUser: second question")
    # A streamed follow-up of the follow-up carries the whole chain.
    items = await events(client, "third", previous_response_id=second.id)
    third = items[-1]
    assert third.type == "response.completed"
    assert last_message(fake) == (
        f"User: first question\n\nAssistant: {first.output_text}\n\nUser: second question\n\n"
        f"Assistant: {second.output_text}\n\nUser: third"
    )
    # The streamed response was stored before its last event went out.
    fetched = await client.responses.retrieve(third.response.id)
    assert fetched.output_text == third.response.output_text


@pytest.mark.parametrize(
    "kind", [pytest.param("mysql", marks=pytest.mark.mysql), pytest.param("redis", marks=pytest.mark.redis)]
)
async def test_a_follow_up_works_on_another_replica_and_account(
    kind: Literal["mysql", "redis"], tmp_path: Path, fake: FakeGrok
) -> None:
    """Two replicas sharing a store, each with its own account: the follow-up replays the conversation."""
    url = requires(kind)
    if kind == "mysql":
        await clean_mysql(url)
    else:
        await drop_redis_prefix(url, "g2a")  # the prefix a gateway uses by default
    replicas = [
        LiveGateway(tmp_path / f"node{i}", fake.base_url, fake.assets_url, storage_mode=kind, database_url=url)
        for i in range(2)
    ]
    clients: list[openai.AsyncOpenAI] = []
    try:
        for replica in replicas:
            await replica.start()
            clients.append(openai.AsyncOpenAI(base_url=f"{replica.url}/v1", api_key="x", max_retries=0))
        await replicas[0].add_accounts("tok-one")
        first = await create(clients[0], "first question")
        await replicas[0].services.store.remove_accounts(["tok-one"])
        await replicas[1].add_accounts("tok-two")
        second = await create(clients[1], "second question", previous_response_id=first.id)
        assert second.status == "completed"
        chat = upstream_chats(fake)[-1]
        assert chat.token == "tok-two"
        assert chat.message == f"User: first question\n\nAssistant: {first.output_text}\n\nUser: second question"
        assert (await clients[1].responses.retrieve(first.id)).output_text == first.output_text
        assert (await clients[0].responses.retrieve(second.id)).output_text == second.output_text
    finally:
        for sdk in clients:
            await sdk.close()
        for replica in replicas:
            await replica.stop()
        if kind == "redis":
            await drop_redis_prefix(url, "g2a")


async def test_retrieve_and_delete(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    made = await create(client, "hi [[think]]")
    fetched = await client.responses.retrieve(made.id)
    assert fetched.model_dump() == made.model_dump()
    await client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.retrieve(made.id)
    assert caught.value.code == "not_found"
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as caught:
        await create(client, "more", previous_response_id=made.id)
    assert (caught.value.code, caught.value.param) == ("previous_response_not_found", "previous_response_id")
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve("resp_" + "0" * 200)


async def test_store_false_keeps_nothing(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    made = await create(client, store=False)
    assert stored_flag(made) is False and made.output_text == ANSWER
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        await create(client, "more", previous_response_id=made.id)
    streamed = await events(client, store=False)
    last = streamed[-1]
    assert last.type == "response.completed"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(last.response.id)


async def test_responses_belong_to_the_client_key_that_made_them(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    for name in ("alice", "bob"):
        key = ClientKey(id=f"key-{name}", name=name, key_hash=hash_key(f"sk-{name}"), prefix="sk-")
        await gateway.services.store.put_client_key(key)
    await gateway.services.load_keys()
    alice = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="sk-alice", max_retries=0)
    bob = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="sk-bob", max_retries=0)
    try:
        made = await create(alice)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            await create(bob, "more", previous_response_id=made.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.delete(made.id)
        assert (await alice.responses.retrieve(made.id)).id == made.id
        follow = await create(alice, "more", previous_response_id=made.id)
        assert follow.status == "completed"
    finally:
        await alice.close()
        await bob.close()


async def test_stored_responses_expire_after_the_ttl(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(responses_ttl_hours=2)
    made = await create(client)
    store = gateway.services.store
    assert await store.purge_responses(time.time() + 3600) == 0  # within the two hours
    assert (await client.responses.retrieve(made.id)).id == made.id
    assert await store.purge_responses(time.time() + 3 * 3600) == 1  # past them
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(made.id)


# ---- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "grok-nope", "input": "hi"}, 404, "model"),
        ({"model": MODEL}, 400, "input"),
        ({"model": MODEL, "input": 5}, 400, "input"),
        ({"model": MODEL, "input": [{"type": "web_search_call", "id": "x"}]}, 400, "input[0].type"),
        ({"model": MODEL, "input": [{"type": "item_reference", "id": "msg_1"}]}, 400, "input[0].type"),
        ({"model": MODEL, "input": [{"role": "robot", "content": "hi"}]}, 400, "input[0].role"),
        ({"model": MODEL, "input": [{"content": "hi"}]}, 400, "input[0].role"),
        ({"model": MODEL, "input": ["hi"]}, 400, "input[0]"),
        ({"model": MODEL, "input": [{"type": "function_call", "name": "f"}]}, 400, "input[0].call_id"),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            400,
            "input[0].content[0].type",
        ),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
            400,
            "input[0].content[0].file_id",
        ),
        ({"model": MODEL, "input": "hi", "tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        ({"model": MODEL, "input": "hi", "tools": [{"type": "function", "name": "bad name"}]}, 400, "tools[0].name"),
        (
            {"model": MODEL, "input": "hi", "tools": [{"type": "function", "name": "f"}] * 2},
            400,
            "tools[1].name",
        ),
        ({"model": MODEL, "input": "hi", "tool_choice": "required"}, 400, "tool_choice"),
        ({"model": MODEL, "input": "hi", "tool_choice": "sometimes"}, 400, "tool_choice"),
        (
            {
                "model": MODEL,
                "input": "hi",
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "function", "name": "g"},
            },
            400,
            "tool_choice.name",
        ),
        (
            {
                "model": MODEL,
                "input": "hi",
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "file_search"},
            },
            400,
            "tool_choice.type",
        ),
        (
            {"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}},
            400,
            "text.format.name",
        ),
        (
            {"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
            400,
            "text.format.schema",
        ),
        ({"model": MODEL, "input": "hi", "text": {"format": {"type": "yaml"}}}, 400, "text.format.type"),
        ({"model": MODEL, "input": "hi", "max_output_tokens": 0}, 400, "max_output_tokens"),
        ({"model": MODEL, "input": "hi", "temperature": 3}, 400, "temperature"),
        ({"model": MODEL, "input": "hi", "background": True}, 400, "background"),
        ({"model": MODEL, "input": "hi", "conversation": "conv_1"}, 400, "conversation"),
        ({"model": MODEL, "input": "", "previous_response_id": "resp_missing"}, 404, "previous_response_id"),
        ({"model": MODEL, "input": ""}, 400, "input"),
    ],
)
async def test_bad_requests_get_the_openai_error_envelope(
    gateway: LiveGateway, fake: FakeGrok, body: dict[str, Any], status: int, param: str
) -> None:
    await gateway.add_accounts("tok1")
    for stream in (False, True):
        got, raw = await post_raw(gateway, {**body, "stream": stream})
        assert got == status, raw
        assert error_of(raw)["param"] == param
    assert upstream_chats(fake) == []


async def test_a_body_that_is_not_json_is_400(gateway: LiveGateway) -> None:
    status, raw = await post_raw(gateway, b"{not json")
    assert status == 400 and error_of(raw)["code"] == "invalid_json"


async def test_streaming_a_stored_response_again_is_refused(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    made = await create(client)
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/v1/responses/{made.id}?stream=true") as resp:
        assert resp.status == 400
        assert error_of(await resp.read())["param"] == "stream"


# ---- function tools ------------------------------------------------------------------------------


def function_calls(resp: Response) -> list[ResponseFunctionToolCall]:
    return [o for o in resp.output if isinstance(o, ResponseFunctionToolCall)]

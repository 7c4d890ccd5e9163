"""Property tests over the Responses API (``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}``), in process
against the fake grok.com: whatever the body, path or query, the answer is never a 500, its status is documented,
an error is OpenAI's envelope exactly, and a stream is the named events the document describes (each ``event:``
line naming the JSON's ``type``, numbered in order, ending with a final response event and no ``[DONE]``). Lone
surrogates (``"\\ud800"``) in any string are refused, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import pytest_asyncio
from asgi_client import AsgiResponse
from fuzzing import (
    CHARACTERS,
    FUZZ,
    JSON_HEADERS,
    FuzzApp,
    assert_openai_error,
    encode,
    fuzz_app,
    holds_surrogate,
    image_urls,
    json_values,
    named_events,
    or_junk,
    raw_bodies,
    texts,
)
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.asyncio(loop_scope="module")

DOCUMENTED = {200, 400, 401, 403, 404, 413, 422, 429, 502, 503, 504}
FINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}
CHAT_MODELS = ["grok-fast", "grok-auto", "grok-expert", "grok-heavy", "grok-4.1"]
PROMPTS = st.text(CHARACTERS, min_size=1, max_size=40).filter(str.strip)
STORED = "stored"  # stands for the id of a response the fixture stored


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FuzzApp]:
    async with fuzz_app(tmp_path_factory.mktemp("fuzz-responses")) as app:
        yield app


async def new_response(gw: FuzzApp) -> str:
    answer = await gw.request("POST", "/v1/responses", encode({"model": "grok-fast", "input": "hi"}), JSON_HEADERS)
    assert answer.status == 200, answer.body[:300]
    response_id: str = answer.json()["id"]
    return response_id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stored_id(gw: FuzzApp) -> str:
    """A stored response that follow-ups and reads may name (never deleted)."""
    return await new_response(gw)


def check(answer: AsgiResponse) -> None:
    assert answer.status in DOCUMENTED, (answer.status, answer.body[:300])
    if answer.status >= 400:
        assert_openai_error(answer)
    elif answer.content_type == "text/event-stream":
        events = named_events(answer.body)
        for n, (name, payload) in enumerate(events):
            assert payload["type"] == name and payload["sequence_number"] == n, (name, payload)
        assert events[-1][0] in FINAL_EVENTS and all(e[0] not in FINAL_EVENTS for e in events[:-1]), events[-1]
    else:
        assert answer.content_type == "application/json", answer.headers
        body = answer.json()
        assert isinstance(body, dict) and body["object"] == "response" and isinstance(body["id"], str), body


# ---- bodies ----------------------------------------------------------------------------------------------------


# How a field's value is drawn: ``or_junk`` (mostly of its type, sometimes anything) or ``well_typed``.
Junk = Callable[[st.SearchStrategy[Any], st.SearchStrategy[str]], st.SearchStrategy[Any]]


def well_typed(good: st.SearchStrategy[Any], text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return good


def content(text: st.SearchStrategy[str], junk: Junk) -> st.SearchStrategy[Any]:
    kinds = st.one_of(st.sampled_from(["input_text", "input_image", "input_file", "output_text", "refusal"]), text)
    part = st.fixed_dictionaries(
        {"type": kinds},
        optional={
            "text": junk(text, text),
            "image_url": junk(image_urls(text), text),
            "file_id": text,
            "refusal": junk(text, text),
        },
    )
    return junk(st.one_of(text, st.lists(part, max_size=3)), text)


def input_items(text: st.SearchStrategy[str], junk: Junk) -> st.SearchStrategy[Any]:
    roles = st.one_of(st.sampled_from(["user", "assistant", "system", "developer"]), text)
    message = st.fixed_dictionaries(
        {"role": roles, "content": content(text, junk)}, optional={"type": st.just("message")}
    )
    call_ids = junk(st.one_of(st.just("call_1"), text), text)
    call = st.fixed_dictionaries(
        {"type": st.just("function_call")},
        optional={"call_id": call_ids, "name": junk(text, text), "arguments": junk(text, text)},
    )
    output = st.fixed_dictionaries(
        {"type": st.just("function_call_output")}, optional={"call_id": call_ids, "output": content(text, junk)}
    )
    other = st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(["reasoning", "item_reference", "web_search_call"]), text)},
        optional={"id": text, "summary": junk(st.just([]), text)},
    )
    return junk(st.one_of(text, st.lists(st.one_of(message, call, output, other), max_size=4)), text)


def tools(text: st.SearchStrategy[str], junk: Junk) -> st.SearchStrategy[Any]:
    schema = st.one_of(
        st.just({"type": "object", "properties": {"city": {"type": "string"}}}),
        st.dictionaries(st.sampled_from(["type", "properties", "required", "x"]), json_values(text), max_size=3),
    )
    tool = st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(["function", "web_search", "mcp"]), text)},
        optional={
            "name": st.one_of(st.sampled_from(["get_weather", "f", "a b"]), text),
            "description": junk(text, text),
            "parameters": schema,
            "strict": junk(st.booleans(), text),
        },
    )
    return junk(st.lists(tool, max_size=3), text)


def request_bodies(text: st.SearchStrategy[str], junk: Junk = or_junk) -> st.SearchStrategy[Any]:
    """Bodies with the request's fields: each value of its type (``well_typed``), or sometimes of any type."""
    models = st.one_of(st.sampled_from([*CHAT_MODELS, "grok-imagine-image", "gpt-4o"]), text)
    numbers = st.one_of(st.integers(-3, 5), st.floats(-1, 3, allow_nan=False))
    choice = st.one_of(
        st.sampled_from(["auto", "none", "required", "any"]),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["function", "web_search"])},
            optional={"name": st.one_of(st.just("get_weather"), text)},
        ),
    )
    text_format = st.fixed_dictionaries(
        {"type": junk(st.sampled_from(["text", "json_object", "json_schema"]), text)},
        optional={
            "name": junk(text, text),
            "schema": junk(st.just({"type": "object", "properties": {"a": {"type": "integer"}}}), text),
            "strict": junk(st.booleans(), text),
        },
    )
    return st.fixed_dictionaries(
        {"model": junk(models, text), "input": input_items(text, junk)},
        optional={
            "instructions": junk(text, text),
            "tools": tools(text, junk),
            "tool_choice": junk(choice, text),
            "parallel_tool_calls": junk(st.booleans(), text),
            "max_output_tokens": junk(st.integers(-2, 50), text),
            "reasoning": junk(st.fixed_dictionaries({}, optional={"effort": text, "summary": text}), text),
            "text": junk(st.fixed_dictionaries({}, optional={"format": text_format}), text),
            "store": junk(st.booleans(), text),
            "previous_response_id": junk(st.one_of(st.just(STORED), text), text),
            "stream": junk(st.booleans(), text),
            "temperature": junk(numbers, text),
            "top_p": junk(numbers, text),
            "metadata": junk(st.dictionaries(text, text, max_size=3), text),
            "user": junk(text, text),
            "background": junk(st.booleans(), text),
            "conversation": junk(st.none(), text),
            "prompt": junk(st.none(), text),
        },
    )


def valid_bodies() -> st.SearchStrategy[Any]:
    message = st.fixed_dictionaries({"role": st.sampled_from(["user", "developer", "assistant"]), "content": PROMPTS})
    return st.fixed_dictionaries(
        {
            "model": st.sampled_from(CHAT_MODELS),
            "input": st.one_of(
                PROMPTS, st.lists(message, max_size=3).map(lambda m: [*m, {"role": "user", "content": "hi"}])
            ),
        },
        optional={
            "instructions": PROMPTS,
            "stream": st.booleans(),
            "store": st.booleans(),
            "previous_response_id": st.just(STORED),
            "max_output_tokens": st.integers(1, 40),
            "reasoning": st.fixed_dictionaries({"effort": st.sampled_from(["low", "medium", "high"])}),
            "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
        },
    )


def bodies(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Structured bodies (dicts) and anything else, raw bytes included."""
    return st.one_of(
        valid_bodies(), request_bodies(text, well_typed), request_bodies(text), json_values(text), raw_bodies()
    )


def with_stored(body: Any, stored_id: str) -> bytes:
    """``body`` as sent: JSON, with the stored response's id where the strategy asked for it."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, dict) and body.get("previous_response_id") == STORED:
        body = {**body, "previous_response_id": stored_id}
    return encode(body)


# ---- properties --------------------------------------------------------------------------------------------------


@FUZZ
@given(body=bodies(texts()))
async def test_create(gw: FuzzApp, stored_id: str, body: Any) -> None:
    check(await gw.request("POST", "/v1/responses", with_stored(body, stored_id), JSON_HEADERS))


# Never empty: GET /v1/responses/ is redirected to /v1/responses, which takes only POST.
IDS = st.one_of(st.sampled_from([STORED, "resp_0", "resp_" + "0" * 32, "x" * 65]), texts().filter(bool))
QUERY = st.dictionaries(st.sampled_from(["stream", "include", "x"]), st.sampled_from(["true", "false", "0", "", "1"]))


@FUZZ
@given(response_id=IDS, method=st.sampled_from(["GET", "GET", "DELETE"]), query=QUERY)
async def test_read_and_delete(
    gw: FuzzApp, stored_id: str, response_id: str, method: str, query: dict[str, str]
) -> None:
    if response_id == STORED:
        # Reads name the fixture's response; a delete gets one of its own, so the others keep finding theirs.
        response_id = stored_id if method == "GET" else await new_response(gw)
    answer = await gw.request(method, f"/v1/responses/{quote(response_id, safe='')}?{urlencode(query)}")
    check(answer)
    if answer.status == 200 and method == "DELETE":
        assert answer.json() == {"id": response_id, "object": "response", "deleted": True}


@FUZZ
@given(body=st.one_of(request_bodies(texts(surrogates=True)), json_values(texts(surrogates=True))))
async def test_lone_surrogates(gw: FuzzApp, stored_id: str, body: Any) -> None:
    answer = await gw.request("POST", "/v1/responses", with_stored(body, stored_id), JSON_HEADERS)
    check(answer)
    if holds_surrogate(body):  # the body is not valid JSON text
        assert answer.status == 400


# Ids as a server hands them over once decoded: a NUL, the replacement for bytes that are not UTF-8 (a lone
# surrogate's %ED%A0%80 included), and non-ASCII past the longest id the store is asked about.
@pytest.mark.parametrize("response_id", ["\x00", "\ufffd\ufffd\ufffd", "\u00e9" * 65, "😀" * 64])
async def test_ids_that_are_odd_text(gw: FuzzApp, response_id: str) -> None:
    for method in ("GET", "DELETE"):
        answer = await gw.request(method, f"/v1/responses/{response_id}")
        check(answer)
        assert answer.status == 404

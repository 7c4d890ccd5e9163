"""Property tests over the Messages API (``POST /v1/messages`` and ``/v1/messages/count_tokens``), in process against
the fake grok.com: whatever the body, method or path, the answer is never a 500, its status is documented, every
error is in Anthropic's shape exactly (``{"type": "error", "error": {"type", "message"}}``, a stream's ``error``
event too), and a stream is the named events the document describes. Lone surrogates (``"\\ud800"``) in any
string are refused, never a 500."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from asgi_client import AsgiResponse
from fuzzing import (
    CHARACTERS,
    FUZZ,
    JSON_HEADERS,
    PNG,
    FuzzApp,
    assert_anthropic_error,
    assert_anthropic_error_body,
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
METHOD_NOT_ALLOWED = 405  # a GET on a POST route: an error in Anthropic's shape too
CHAT_MODELS = ["grok-fast", "grok-auto", "grok-expert", "grok-3-fast", "grok-4.1"]
PROMPTS = st.text(CHARACTERS, min_size=1, max_size=40).filter(str.strip)
PATHS = ["/v1/messages", "/v1/messages/count_tokens"]
# How a field's value is drawn: ``or_junk`` (mostly of its type, sometimes anything) or ``well_typed``.
Junk = Callable[[st.SearchStrategy[Any], st.SearchStrategy[str]], st.SearchStrategy[Any]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FuzzApp]:
    async with fuzz_app(tmp_path_factory.mktemp("fuzz-messages")) as app:
        yield app


def check(answer: AsgiResponse, path: str = "/v1/messages") -> None:
    assert answer.status in DOCUMENTED | {METHOD_NOT_ALLOWED}, (answer.status, answer.body[:300])
    if answer.status >= 400:
        assert_anthropic_error(answer)
    elif answer.content_type == "text/event-stream":
        events = named_events(answer.body)
        for name, payload in events:
            assert payload["type"] == name, (name, payload)
            if name == "error":
                assert_anthropic_error_body(payload)
        assert events[0][0] == "message_start", events[0]
        assert events[-1][0] in ("message_stop", "error"), events[-1]
    else:
        assert answer.content_type == "application/json", answer.headers
        body = answer.json()
        if path.endswith("/count_tokens"):
            assert set(body) == {"input_tokens"} and isinstance(body["input_tokens"], int), body
        else:
            assert body["type"] == "message" and body["role"] == "assistant", body


# ---- bodies ----------------------------------------------------------------------------------------------------


def well_typed(good: st.SearchStrategy[Any], text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return good


def image_sources(text: st.SearchStrategy[str], junk: Junk) -> st.SearchStrategy[Any]:
    data = st.one_of(st.just(base64.b64encode(PNG).decode()), text)
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("base64")},
            optional={"media_type": junk(st.sampled_from(["image/png", "text/plain"]), text), "data": junk(data, text)},
        ),
        st.fixed_dictionaries({"type": st.just("url")}, optional={"url": junk(image_urls(text), text)}),
        st.fixed_dictionaries({"type": st.sampled_from(["file", "other"])}, optional={"file_id": text}),
    )


def blocks(text: st.SearchStrategy[str], junk: Junk) -> st.SearchStrategy[Any]:
    inner = st.fixed_dictionaries({"type": st.sampled_from(["text", "image"])}, optional={"text": junk(text, text)})
    kinds = st.one_of(
        st.sampled_from(
            ["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document", "server_tool_use"]
        ),
        text,
    )
    block = st.fixed_dictionaries(
        {"type": kinds},
        optional={
            "text": junk(text, text),
            "source": junk(image_sources(text, junk), text),
            "id": junk(st.one_of(st.just("toolu_1"), text), text),
            "name": junk(st.one_of(st.just("get_weather"), text), text),
            "input": junk(st.dictionaries(text, json_values(text), max_size=2), text),
            "tool_use_id": junk(st.one_of(st.just("toolu_1"), text), text),
            "content": junk(st.one_of(text, st.lists(inner, max_size=2), st.none()), text),
            "is_error": junk(st.booleans(), text),
            "thinking": junk(text, text),
            "signature": junk(text, text),
            "data": junk(text, text),
            "cache_control": json_values(text),
        },
    )
    return st.lists(block, max_size=3)


def messages(text: st.SearchStrategy[str], junk: Junk) -> st.SearchStrategy[Any]:
    roles = junk(st.one_of(st.sampled_from(["user", "assistant", "system"]), text), text)
    message = st.fixed_dictionaries(
        {"role": roles, "content": junk(st.one_of(text, blocks(text, junk)), text)}, optional={"name": text}
    )
    return junk(st.lists(message, min_size=1, max_size=3), text)


def tools(text: st.SearchStrategy[str], junk: Junk) -> st.SearchStrategy[Any]:
    schema = st.one_of(
        st.just({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        st.dictionaries(st.sampled_from(["type", "properties", "required", "x"]), json_values(text), max_size=3),
    )
    tool = st.fixed_dictionaries(
        {"name": junk(st.one_of(st.sampled_from(["get_weather", "a b", ""]), text), text)},
        optional={
            "description": junk(text, text),
            "input_schema": junk(schema, text),
            "type": junk(st.one_of(st.sampled_from(["custom", "web_search_20250305", "bash_20250124"]), text), text),
        },
    )
    return junk(st.lists(tool, max_size=3), text)


def request_bodies(text: st.SearchStrategy[str], junk: Junk = or_junk) -> st.SearchStrategy[Any]:
    """Bodies with the request's fields: each value of its type (``well_typed``), or sometimes of any type."""
    models = st.one_of(st.sampled_from([*CHAT_MODELS, "claude-sonnet-4-5", "grok-imagine-image"]), text)
    numbers = st.one_of(st.integers(-3, 5), st.floats(-1, 3, allow_nan=False))
    choice = st.fixed_dictionaries(
        {"type": junk(st.one_of(st.sampled_from(["auto", "any", "tool", "none"]), text), text)},
        optional={
            "name": junk(st.one_of(st.just("get_weather"), text), text),
            "disable_parallel_tool_use": junk(st.booleans(), text),
        },
    )
    thinking = st.fixed_dictionaries(
        {"type": junk(st.sampled_from(["enabled", "adaptive", "between_tools", "disabled", "on"]), text)},
        optional={
            "budget_tokens": junk(st.integers(-1, 4096), text),
            "display": junk(st.sampled_from(["summarized", "omitted", "full"]), text),
        },
    )
    system = st.one_of(text, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text}), max_size=2))
    return st.fixed_dictionaries(
        {"model": junk(models, text), "messages": messages(text, junk), "max_tokens": junk(st.integers(-2, 60), text)},
        optional={
            "system": junk(system, text),
            "stop_sequences": junk(st.lists(text, max_size=3), text),
            "stream": junk(st.booleans(), text),
            "temperature": junk(numbers, text),
            "top_p": junk(numbers, text),
            "top_k": junk(st.integers(-2, 50), text),
            "tools": tools(text, junk),
            "tool_choice": junk(choice, text),
            "thinking": junk(thinking, text),
            "metadata": json_values(text),
        },
    )


def valid_bodies() -> st.SearchStrategy[Any]:
    turns = st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": PROMPTS}), max_size=3
    )
    return st.fixed_dictionaries(
        {
            "model": st.sampled_from(CHAT_MODELS),
            "max_tokens": st.integers(1, 60),
            "messages": turns.map(lambda m: [*m, {"role": "user", "content": "hi"}]),
        },
        optional={
            "system": PROMPTS,
            "stream": st.booleans(),
            "stop_sequences": st.lists(st.text(min_size=1, max_size=3), max_size=3),
            "thinking": st.sampled_from(
                [{"type": "enabled", "budget_tokens": 1024}, {"type": "adaptive"}, {"type": "disabled"}]
            ),
            "temperature": st.floats(0, 1),
        },
    )


def bodies(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    structured = st.one_of(valid_bodies(), request_bodies(text, well_typed), request_bodies(text))
    return st.one_of(structured.map(encode), json_values(text).map(encode), raw_bodies())


# ---- properties --------------------------------------------------------------------------------------------------


@FUZZ
@given(body=bodies(texts()), path=st.sampled_from(PATHS))
async def test_bodies(gw: FuzzApp, body: bytes, path: str) -> None:
    check(await gw.request("POST", path, body, JSON_HEADERS), path)


@FUZZ
@given(
    path=st.one_of(
        st.sampled_from([*PATHS, "/v1/messages/", "/v1/messages/batches"]),
        texts().map(lambda tail: "/v1/messages/" + quote(tail, safe="/")),
    ),
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST"]),
    key=st.sampled_from([None, "x-api-key", "authorization"]),
)
async def test_methods_and_paths(gw: FuzzApp, path: str, method: str, key: str | None) -> None:
    """Routing errors under /v1/messages are Anthropic's too, whichever way a key is sent (the gateway has none)."""
    headers = [*JSON_HEADERS, (key, "Bearer sk-x" if key == "authorization" else "sk-x")] if key else JSON_HEADERS
    answer = await gw.request(method, path, b"{}", headers)
    if answer.status == 307:  # a trailing slash is sent to the path without it
        assert answer.headers["location"].startswith("http://testserver/v1/messages")
        return
    check(answer, path)


@FUZZ
@given(
    body=st.one_of(request_bodies(texts(surrogates=True)), json_values(texts(surrogates=True))),
    path=st.sampled_from(PATHS),
)
async def test_lone_surrogates(gw: FuzzApp, body: Any, path: str) -> None:
    answer = await gw.request("POST", path, encode(body), JSON_HEADERS)
    check(answer, path)
    if holds_surrogate(body):  # the body is not valid JSON text
        assert answer.status == 400

"""Property tests over every /v1 endpoint, in process against the fake grok.com: whatever the body, query or path,
the answer is never a 500, its status is one the README documents, and an error is OpenAI's envelope exactly
(streams included: an error mid-stream is a data frame holding the envelope)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import pytest_asyncio
from asgi_client import AsgiResponse
from fuzzing import (
    CHARACTERS,
    FUZZ,
    JSON_HEADERS,
    PNG,
    FuzzApp,
    assert_openai_error,
    encode,
    fuzz_app,
    image_urls,
    json_values,
    multipart,
    or_junk,
    raw_bodies,
    texts,
)
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.asyncio(loop_scope="module")

DOCUMENTED = {200, 400, 401, 403, 404, 413, 429, 502, 503, 504}
REDIRECT = 307  # a path with a trailing slash is sent to the one without
MODELS = st.one_of(
    st.sampled_from(
        ["grok-fast", "grok-auto", "grok-heavy", "grok-4-heavy", "grok-imagine-image", "grok-imagine-video", "dall-e-3"]
    ),
    texts(max_size=12),
)
TEXT = texts()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FuzzApp]:
    async with fuzz_app(tmp_path_factory.mktemp("fuzz-v1")) as app:
        yield app


def check(answer: AsgiResponse) -> None:
    assert answer.status in DOCUMENTED | {REDIRECT}, (answer.status, answer.body[:300])
    if answer.status == REDIRECT:
        assert answer.headers["location"].startswith("http://testserver/v1/")
    elif answer.status >= 400:
        assert_openai_error(answer)
    elif answer.content_type == "text/event-stream":
        for frame in answer.body.decode().split("\n\n"):
            data = [line[len("data: ") :] for line in frame.split("\n") if line.startswith("data: ")]
            if not data or data[0] == "[DONE]":
                continue
            payload = json.loads(data[0])
            if "error" in payload:
                assert_openai_error(AsgiResponse(200, {"content-type": "application/json"}, data[0].encode()))
    elif answer.content_type == "application/json":
        assert isinstance(answer.json(), dict)


# ---- bodies ----------------------------------------------------------------------------------------------------


def content_parts() -> st.SearchStrategy[Any]:
    part = st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(["text", "image_url", "refusal"]), TEXT)},
        optional={
            "text": or_junk(TEXT, TEXT),
            "image_url": st.one_of(
                image_urls(TEXT), st.fixed_dictionaries({"url": image_urls(TEXT)}, optional={"detail": TEXT})
            ),
            "refusal": TEXT,
        },
    )
    return st.lists(part, max_size=3)


def messages() -> st.SearchStrategy[Any]:
    roles = st.one_of(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]), TEXT)
    message = st.fixed_dictionaries(
        {"role": roles},
        optional={
            "content": st.one_of(TEXT, st.none(), content_parts(), json_values(TEXT)),
            "name": or_junk(TEXT, TEXT),
            "tool_calls": json_values(TEXT),
            "tool_call_id": TEXT,
            "reasoning_content": or_junk(TEXT, TEXT),
        },
    )
    return or_junk(st.lists(message, max_size=3), TEXT)


def chat_bodies() -> st.SearchStrategy[Any]:
    numbers = st.one_of(st.integers(-3, 5), st.floats(-1, 3, allow_nan=False))
    return st.fixed_dictionaries(
        {"model": or_junk(MODELS, TEXT), "messages": messages()},
        optional={
            "stream": or_junk(st.booleans(), TEXT),
            "stream_options": or_junk(st.fixed_dictionaries({"include_usage": st.booleans()}), TEXT),
            "temperature": or_junk(numbers, TEXT),
            "top_p": or_junk(numbers, TEXT),
            "max_tokens": or_junk(st.integers(-2, 50), TEXT),
            "max_completion_tokens": or_junk(st.integers(-2, 50), TEXT),
            "n": or_junk(st.integers(0, 3), TEXT),
            "stop": or_junk(st.one_of(TEXT, st.lists(TEXT, max_size=6)), TEXT),
            "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]), json_values(TEXT)),
            "tools": json_values(TEXT),
            "user": or_junk(TEXT, TEXT),
        },
    )


def image_bodies() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"prompt": or_junk(TEXT, TEXT)},
        optional={
            "model": or_junk(MODELS, TEXT),
            "n": or_junk(st.integers(-1, 12), TEXT),
            "size": or_junk(st.one_of(st.sampled_from(["1024x1024", "1792x1024", "auto"]), TEXT), TEXT),
            "aspect_ratio": or_junk(st.one_of(st.sampled_from(["1:1", "16:9", "2:3"]), TEXT), TEXT),
            "response_format": or_junk(st.sampled_from(["url", "b64_json", "png"]), TEXT),
            "stream": or_junk(st.booleans(), TEXT),
            "partial_images": or_junk(st.integers(-1, 4), TEXT),
        },
    )


def video_bodies() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"prompt": or_junk(TEXT, TEXT)},
        optional={
            "model": or_junk(MODELS, TEXT),
            "seconds": or_junk(st.one_of(st.sampled_from(["4", "8", "12", "6s", "15"]), st.integers(-1, 20)), TEXT),
            "size": or_junk(st.one_of(st.sampled_from(["720x1280", "1280x720", "480x480"]), TEXT), TEXT),
            "aspect_ratio": or_junk(TEXT, TEXT),
            "resolution": or_junk(st.sampled_from(["480p", "720p", "1080p"]), TEXT),
            "input_reference": st.one_of(
                image_urls(TEXT), st.fixed_dictionaries({"image_url": image_urls(TEXT)}), json_values(TEXT)
            ),
        },
    )


# Requests a client would send, so that the answers past validation (streams included) are exercised too.
PROMPTS = st.text(CHARACTERS, min_size=1, max_size=40).filter(str.strip)


def valid_chat_bodies() -> st.SearchStrategy[Any]:
    message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]), "content": PROMPTS})
    return st.fixed_dictionaries(
        {
            "model": st.sampled_from(["grok-fast", "grok-auto", "grok-expert", "grok-heavy", "grok-4.1"]),
            "messages": st.lists(message, min_size=1, max_size=3).map(
                lambda m: [*m, {"role": "user", "content": "hi"}]
            ),
        },
        optional={
            "stream": st.booleans(),
            "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
            "max_tokens": st.integers(1, 40),
            "stop": st.lists(st.text(min_size=1, max_size=3), max_size=4),
            "temperature": st.floats(0, 2),
        },
    )


def valid_image_bodies() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"prompt": PROMPTS},
        optional={
            "model": st.sampled_from(["grok-imagine-image", "grok-imagine-image-pro", "dall-e-3"]),
            "n": st.integers(1, 4),
            "size": st.sampled_from(["1024x1024", "1792x1024", "auto"]),
            "response_format": st.sampled_from(["url", "b64_json"]),
            "stream": st.booleans(),
            "partial_images": st.integers(0, 3),
        },
    )


def bodies(valid: st.SearchStrategy[Any], structured: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(valid.map(encode), structured.map(encode), json_values(TEXT).map(encode), raw_bodies())


FORM_FIELDS = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(["prompt", "model", "n", "size", "response_format", "stream", "seconds"]), TEXT),
        TEXT,
    ),
    max_size=6,
)
FILES = st.lists(
    st.tuples(
        st.sampled_from(["image", "image[]", "mask", "input_reference", "other"]), st.one_of(st.just(PNG), st.binary())
    ),
    max_size=3,
)


# ---- properties --------------------------------------------------------------------------------------------------


@FUZZ
@given(body=bodies(valid_chat_bodies(), chat_bodies()))
async def test_chat_completions(gw: FuzzApp, body: bytes) -> None:
    check(await gw.request("POST", "/v1/chat/completions", body, JSON_HEADERS))


@FUZZ
@given(body=bodies(valid_image_bodies(), image_bodies()))
async def test_image_generations(gw: FuzzApp, body: bytes) -> None:
    check(await gw.request("POST", "/v1/images/generations", body, JSON_HEADERS))


@FUZZ
@given(
    fields=st.one_of(st.builds(lambda p: [("prompt", p)], PROMPTS), FORM_FIELDS),
    files=st.one_of(st.just([("image", PNG)]), FILES),
    raw=st.one_of(st.none(), st.none(), raw_bodies()),
)
async def test_image_edits(
    gw: FuzzApp, fields: list[tuple[str, str]], files: list[tuple[str, bytes]], raw: bytes | None
) -> None:
    body, headers = multipart(fields, files)
    if raw is not None:  # not multipart at all, or a broken one
        body = raw
    check(await gw.request("POST", "/v1/images/edits", body, headers))


@FUZZ
@given(
    body=bodies(st.fixed_dictionaries({"prompt": PROMPTS}), video_bodies()),
    form=st.one_of(st.none(), st.tuples(FORM_FIELDS, FILES)),
)
async def test_video_creation(
    gw: FuzzApp, body: bytes, form: tuple[list[tuple[str, str]], list[tuple[str, bytes]]] | None
) -> None:
    headers = JSON_HEADERS
    if form is not None:
        body, headers = multipart(*form)
    check(await gw.request("POST", "/v1/videos", body, headers))


QUERY = st.dictionaries(st.sampled_from(["limit", "order", "after", "variant", "x"]), TEXT, max_size=3)
IDS = st.one_of(st.sampled_from(["grok-fast", "video_0", "video_00000000000000000000"]), TEXT)


@FUZZ
@given(
    target=st.one_of(
        st.builds(lambda q: f"/v1/videos?{urlencode(q)}", QUERY),
        st.builds(lambda i: f"/v1/models/{quote(i, safe='')}", IDS),
        st.builds(lambda i: f"/v1/videos/{quote(i, safe='')}", IDS),
        st.builds(lambda i, q: f"/v1/videos/{quote(i, safe='')}/content?{urlencode(q)}", IDS, QUERY),
    ),
    method=st.sampled_from(["GET", "GET", "DELETE"]),
)
async def test_reads_and_deletes(gw: FuzzApp, target: str, method: str) -> None:
    if method == "DELETE" and not target.startswith("/v1/videos/") or "/content" in target:
        method = "GET"  # DELETE exists only on one video
    check(await gw.request(method, target))

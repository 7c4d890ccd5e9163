"""Stop sequences and max_tokens on a streamed answer."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from grok2api.conversation.limits import OutputLimit
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway


def run(limit: OutputLimit, pieces: list[str]) -> str:
    return "".join(limit.feed(p) for p in pieces) + limit.flush()


@pytest.mark.parametrize("cut", range(1, 12))
def test_stop_sequence_split_anywhere(cut: int) -> None:
    text = "Hello END there"
    limit = OutputLimit(stop=["END"])
    assert run(limit, [text[:cut], text[cut:]]) == "Hello "
    assert (limit.finish_reason, limit.stop_sequence) == ("stop", "END")


def test_text_that_only_looks_like_a_stop_start_is_released() -> None:
    limit = OutputLimit(stop=["</answer>"])
    assert limit.feed("a </ans") == "a "
    assert limit.feed("wer-ish") == "</answer-ish"
    assert limit.flush() == "" and limit.finish_reason is None
    limit = OutputLimit(stop=["###"])
    assert run(limit, ["x #", "#"]) == "x ##"  # the end of the answer releases what was held


def test_earliest_of_several_stops_wins() -> None:
    limit = OutputLimit(stop=["beta", "al"])
    assert run(limit, ["gamma alpha beta"]) == "gamma "
    assert limit.stop_sequence == "al"  # the one that ended the answer, not the first listed


def test_max_tokens_cuts_with_length() -> None:
    limit = OutputLimit(max_tokens=2)  # about 8 bytes
    assert run(limit, ["abcd", "efgh", "ijkl"]) == "abcdefgh"
    assert limit.finish_reason == "length"
    assert limit.feed("more") == ""


def test_max_tokens_never_splits_a_character() -> None:
    limit = OutputLimit(max_tokens=1)
    out = run(limit, ["ab€"])  # 'a','b' then a 3-byte character that does not fit in 4 bytes
    assert out == "ab" and limit.finish_reason == "length"


def test_no_limits_passes_everything() -> None:
    limit = OutputLimit()
    assert not limit.active
    assert run(limit, ["any", " text"]) == "any text" and limit.finish_reason is None


# ---- end to end ---------------------------------------------------------------------------------


async def test_stop_sequence_in_stream_and_non_stream(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-stop")
    ask: list[Any] = [{"role": "user", "content": "one two three"}]
    reply = await client.chat.completions.create(model="grok-3-fast", messages=ask, stop=["said"])
    assert reply.choices[0].message.content == "Hello! You"
    assert reply.choices[0].finish_reason == "stop"
    stream = await client.chat.completions.create(model="grok-3-fast", messages=ask, stop="You", stream=True)
    text, finish = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert text == "Hello! " and finish == "stop"


async def test_max_tokens_truncates_with_length(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok-len")
    ask: list[Any] = [{"role": "user", "content": "[[tokens:50]] long answer"}]
    reply = await client.chat.completions.create(model="grok-3-fast", messages=ask, max_tokens=3)
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "length"
    assert 0 < len(content.encode()) <= 12
    assert reply.usage is not None and reply.usage.completion_tokens <= 3
    stream = await client.chat.completions.create(
        model="grok-3-fast", messages=ask, max_completion_tokens=2, stream=True
    )
    finishes = [c.choices[0].finish_reason async for c in stream if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]


async def test_too_many_stop_sequences_is_a_400(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok-4")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="grok-3-fast", messages=[{"role": "user", "content": "x"}], stop=["a", "b", "c", "d", "e"]
        )
    assert info.value.body is not None and "stop" in str(info.value.body)

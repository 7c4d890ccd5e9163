"""What the bench reads of the gateway's streams: content tokens counted however the bytes are cut, the end
noted, an error frame raised."""

from __future__ import annotations

import pytest

from grok2api.cli.bench_procs import BenchError
from grok2api.cli.bench_targets import _SseReader

STREAM = (
    b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_tokens_are_counted_however_the_stream_is_cut(size: int) -> None:
    ticks: list[int] = []
    sse = _SseReader(lambda: ticks.append(1))
    for i in range(0, len(STREAM), size):
        sse.feed(STREAM[i : i + size])
    sse.check()
    assert sse.tokens == 2 and len(ticks) == 2 and sse.done


def test_an_error_frame_is_raised_and_a_stream_without_its_end_fails_the_check() -> None:
    sse = _SseReader(lambda: None)
    with pytest.raises(BenchError, match="gateway error"):
        sse.feed(b'data: {"error":{"message":"upstream failed"}}\n\n')
    cut = _SseReader(lambda: None)
    cut.feed(STREAM[: STREAM.index(b"data: [DONE]")])
    with pytest.raises(BenchError, match="ended early"):
        cut.check()

"""Finding tool call blocks in streamed text: prose out early, nothing of the envelope ever."""

from __future__ import annotations

import pytest

from grok2api.conversation.envelope import Block, EnvelopeParser, Piece, Prose

CALL = '{"name": "f", "arguments": {"x": "<b>"}}'
TEXT = f"Sure, one moment. ```json\n<tool_call>{CALL}</tool_call>\n``` done"


def run(chunks: list[str]) -> list[Piece]:
    parser = EnvelopeParser()
    pieces: list[Piece] = []
    for chunk in chunks:
        pieces.extend(parser.feed(chunk))
    pieces.extend(parser.flush())
    return pieces


def merged(pieces: list[Piece]) -> list[Piece]:
    """Adjacent prose joined, so results compare independently of chunking."""
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, Prose) and out and isinstance(out[-1], Prose):
            out[-1] = Prose(out[-1].text + piece.text)
        elif not (isinstance(piece, Prose) and not piece.text):
            out.append(piece)
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, len(TEXT)])
def test_any_chunking_gives_the_same_pieces(size: int) -> None:
    chunks = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    assert merged(run(chunks)) == [Prose("Sure, one moment. "), Block(CALL), Prose(" done")]


def test_every_split_point_of_the_tags_is_held() -> None:
    for cut in range(len(TEXT)):
        pieces = run([TEXT[:cut], TEXT[cut:]])
        prose = "".join(p.text for p in pieces if isinstance(p, Prose))
        assert "tool_call" not in prose and "```" not in prose, cut


def test_prose_is_released_as_soon_as_it_cannot_start_a_tag() -> None:
    parser = EnvelopeParser()
    assert parser.feed("Hello <") == [Prose("Hello ")]
    assert parser.feed("b>bold") == [Prose("<b>bold")]
    assert parser.feed(" <tool_") == [Prose(" ")]
    assert parser.feed("cal") == []
    assert parser.feed("x") == [Prose("<tool_calx")]
    assert parser.feed("``") == []
    assert parser.feed("`py\nprint(1)") == [Prose("```py\nprint(1)")]


def test_tags_match_case_insensitively_and_unclosed_blocks_are_reported() -> None:
    assert merged(run(["<TOOL_CALL>{}</Tool_Call>"])) == [Block("{}")]
    assert merged(run(['a <tool_call>{"name": '])) == [Prose("a "), Block('{"name": ', closed=False)]


@pytest.mark.parametrize("size", [1, 2, 3, len(TEXT)])
def test_the_fence_around_several_blocks_is_taken_out_whole(size: int) -> None:
    text = f"Here:\n```xml\n<tool_call>{CALL}</tool_call>\n<tool_call>{{}}</tool_call>\n```\nDone. ```py\nx```"
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    expected = [Prose("Here:\n"), Block(CALL), Prose("\n"), Block("{}"), Prose("\nDone. ```py\nx```")]
    assert merged(run(chunks)) == expected


def test_only_a_fence_that_opened_before_a_block_is_closed_with_it() -> None:
    assert merged(run([f"<tool_call>{CALL}</tool_call>\n```\nmore"])) == [Block(CALL), Prose("\n```\nmore")]
    assert merged(run([f"```\n<tool_call>{CALL}</tool_call> and then ```"])) == [
        Block(CALL),
        Prose(" and then ```"),
    ]
    assert merged(run([f"```\n<tool_call>{CALL}</tool_call>\n"])) == [Block(CALL), Prose("\n")]

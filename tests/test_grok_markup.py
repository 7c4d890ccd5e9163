"""TagFilter: drops whole filtered elements from streamed text, whatever the token boundaries."""

from __future__ import annotations

import pytest

from grok2api.grok.markup import TagFilter
from grok2api.settings import DEFAULT_FILTERED_TAGS

TAGS = [t for t in DEFAULT_FILTERED_TAGS.split(",") if t]


def run(chunks: list[str], tags: list[str] | None = None) -> str:
    f = TagFilter(TAGS if tags is None else tags)
    return "".join(f.feed(c) for c in chunks) + f.flush()


def every_split(text: str) -> list[list[str]]:
    """The text cut once at every position, plus one character per chunk."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


ARTIFACT = 'Code: <xaiArtifact contentType="text/python">print(1)</xaiArtifact> done'
CITATION = (
    'Fact<grok:render card_id="k9" card_type="citation_card"><argument name="citation_id">0</argument>'
    "</grok:render> more"
)
TOOL_CARD = (
    "a<xai:tool_usage_card><xai:tool_usage_card_id>t1</xai:tool_usage_card_id>"
    "<xai:tool_name>web_search</xai:tool_name></xai:tool_usage_card>b"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ARTIFACT, "Code:  done"),
        (CITATION, "Fact more"),
        (TOOL_CARD, "ab"),
        ("x <XAIARTIFACT id='1'>secret</XaiArtifact> y", "x  y"),
        ('one <grok:render card_id="1"/> two', "one  two"),
        ("stray </xaiArtifact>closer", "stray closer"),
        ("a\n<xaiArtifact\n  title='t'>body</xaiartifact>\nb", "a\n\nb"),
        ("<xaiArtifact>1</xaiArtifact>mid<xaiArtifact>2</xaiArtifact>", "mid"),
    ],
)
def test_elements_are_removed_at_every_token_boundary(text: str, expected: str) -> None:
    for chunks in every_split(text):
        assert run(chunks) == expected, chunks


@pytest.mark.parametrize(
    "text",
    [
        "if a < b and c > d",
        "x<y",
        "<div>html stays</div>",
        "<xaiartifacts>a longer tag name is not the filtered one</xaiartifacts>",
        "</xai>",
        "ends with <",
        "<",
        "<<<>>>",
        "emoji 👨\u200d👩\u200d👧 <b>漢字</b>",
    ],
)
def test_other_angle_brackets_pass_through(text: str) -> None:
    for chunks in every_split(text):
        assert run(chunks) == text, chunks


def test_configured_tag_names_are_case_insensitive() -> None:
    assert run(["a <xaiArtifact>x</xaiArtifact> b"], ["XaiArtifact"]) == "a  b"
    assert run(["a <XAIARTIFACT>x</xaiartifact> b"], ["xaiartifact"]) == "a  b"


def test_no_tags_means_no_filtering() -> None:
    assert run([ARTIFACT], []) == ARTIFACT
    assert run([ARTIFACT], [""]) == ARTIFACT


def test_partial_opener_is_held_until_it_can_be_decided() -> None:
    f = TagFilter(TAGS)
    assert f.feed("before <xai") == "before "
    assert f.feed("Art") == ""
    assert f.feed("ifactual text") == "<xaiArtifactual text"
    assert f.flush() == ""


def test_text_after_a_closed_element_flows_immediately() -> None:
    f = TagFilter(TAGS)
    assert f.feed("<xaiArtifact a='1'>") == ""
    assert f.feed("print(1)") == ""
    assert f.feed("</xaiArti") == ""
    assert f.feed("fact> after") == " after"


def test_unclosed_element_is_dropped_at_the_end() -> None:
    f = TagFilter(TAGS)
    assert f.feed("keep <xaiArtifact>never closed") == "keep "
    assert f.flush() == ""
    # the filter is reusable after a flush
    assert f.feed("next") == "next"


def test_held_back_text_is_returned_by_flush() -> None:
    f = TagFilter(TAGS)
    assert f.feed("a <grok:ren") == "a "
    assert f.flush() == "<grok:ren"

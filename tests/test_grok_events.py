"""The tolerant line parser: Grok's streamed lines (NDJSON or SSE framed) into typed events."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from grok2api.grok.events import (
    End,
    ErrorEvent,
    Event,
    ImageProgress,
    Images,
    Reasoning,
    SearchResult,
    SearchResults,
    StreamParser,
    Text,
    Video,
    VideoProgress,
    split_objects,
)

_enc = msgspec.json.Encoder()


def line(response: dict[str, Any]) -> bytes:
    return _enc.encode({"result": {"response": response}})


def tok(text: Any, thinking: bool = False, tag: str = "final", **extra: Any) -> bytes:
    return line({"token": text, "isThinking": thinking, "messageTag": tag, "responseId": "r1", **extra})


def parse(*lines: bytes | str, parser: StreamParser | None = None) -> list[Event]:
    p = parser or StreamParser()
    return [event for raw in lines for event in p.feed_line(raw)]


def test_ndjson_tokens_become_text_and_reasoning() -> None:
    events = parse(tok("Let me ", thinking=True), tok("think.", thinking=True), tok("Hello"), tok(" world"))
    assert events == [Reasoning("Let me "), Reasoning("think."), Text("Hello"), Text(" world")]


def test_sse_framing_and_control_lines() -> None:
    events = parse(
        b"event: message",
        b"id: 7",
        b"retry: 1000",
        b": keep-alive comment",
        b"data: " + tok("a"),
        b"data:" + tok("b"),
        b"data: [DONE]",
        b"[DONE]",
    )
    assert events == [Text("a"), Text("b")]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"\r",
        b"data:",
        b"not json at all",
        b'{"result":{"response":{"token":"broken',
        b"]]",
        b"{}",
        b"[1,2]",
        b'"just a string"',
    ],
)
def test_blank_and_malformed_lines_yield_nothing(raw: bytes) -> None:
    assert parse(raw) == []


def test_malformed_lines_do_not_break_the_stream() -> None:
    events = parse(tok("one"), b'{"result":{"response":{"token":"bro', b"\xff\xfe garbage", b"", tok("two"))
    assert events == [Text("one"), Text("two")]


def test_several_objects_on_one_line() -> None:
    assert parse(tok("two") + tok(" on one line")) == [Text("two"), Text(" on one line")]
    # with separators, braces inside strings and an invalid (but balanced) object in between
    joined = tok("a {b}") + b" " + b'{"oops": nope}' + b"\t" + tok('c "}{" d')
    assert parse(joined) == [Text("a {b}"), Text('c "}{" d')]


def test_split_objects_handles_escapes_and_nesting() -> None:
    assert split_objects('{"a":"x\\"}"}{"b":{"c":[1,{"d":2}]}}') == [{"a": 'x"}'}, {"b": {"c": [1, {"d": 2}]}}]
    assert split_objects('{"a":1}') == [{"a": 1}]
    assert split_objects("nothing here") == []


def test_split_objects_cuts_packed_objects_only_between_them() -> None:
    # "}{" inside strings is no boundary; three objects back to back come out in order.
    packed = '{"a":"}{"}{"b":"x}{y","c":{}}{"d":[{}]}'
    assert split_objects(packed) == [{"a": "}{"}, {"b": "x}{y", "c": {}}, {"d": [{}]}]
    # A malformed object among them is skipped, as before, and the well-formed ones around it are kept.
    assert split_objects('{"a":1}{"b":}{"c":3}') == [{"a": 1}, {"c": 3}]
    # Something that is not an object between objects is not one of them.
    assert split_objects('[{"a":1}]{"b":2}') == [{"a": 1}, {"b": 2}]
    assert split_objects('{"a":1} junk {"b":2}') == [{"a": 1}, {"b": 2}]


def test_str_lines_and_unknown_fields_are_accepted() -> None:
    raw = tok("hi", newFieldFromTheFuture={"x": [1]}, isSoftStop=False).decode()
    assert parse(raw) == [Text("hi")]
    assert parse(_enc.encode({"result": {"somethingNew": {"token": "ignored"}}})) == []


def test_non_text_tokens_are_skipped_and_headers_are_spaced() -> None:
    events = parse(
        tok(["a", "list"]),
        tok({"text": "a dict"}),
        tok(""),
        tok("Answering", tag="header"),
        tok("Step", thinking=True, tag="header"),
    )
    assert events == [Text("\n\nAnswering\n\n"), Reasoning("\n\nStep\n\n")]


def test_tool_usage_cards_carry_nothing() -> None:
    card = "<xai:tool_usage_card><xai:tool_name>web_search</xai:tool_name></xai:tool_usage_card>"
    assert parse(tok(card, thinking=True, tag="tool_usage_card", toolUsageCardId="t1")) == []


def test_web_search_results() -> None:
    results = [
        {"url": "https://example.com/a", "title": "A", "preview": "first"},
        {"url": "https://example.com/b"},
        {"title": "no url is dropped"},
        "not an object",
    ]
    events = parse(line({"isThinking": True, "toolUsageCardId": "t1", "webSearchResults": {"results": results}}))
    assert events == [
        SearchResults(
            [
                SearchResult("A", "https://example.com/a", "first"),
                SearchResult("https://example.com/b", "https://example.com/b", ""),
            ]
        )
    ]
    assert parse(line({"webSearchResults": {"results": [{"title": "x"}]}})) == []


def test_citation_cards_turn_render_tags_into_links() -> None:
    """A ``<grok:render card_id=…>`` tag becomes ``[[n]](url)`` once its card attachment (a JSON string in
    ``jsonData``) is known; text after a tag waits for the card, and an unknown card's tag is dropped."""
    p = StreamParser()
    card = {"jsonData": _enc.encode({"id": "k9", "url": "https://example.com/a"}).decode()}
    tag = '<grok:render card_id="{}" card_type="citation_card"><argument name="citation_id">0</argument></grok:render>'
    assert parse(tok("Hello "), tok(tag.format("k1")), tok(" world"), parser=p) == [Text("Hello ")]
    assert parse(line({"cardAttachment": card, "messageTag": "final"}), tok(tag.format("k9")), parser=p) == []
    final = line({"modelResponse": {"message": "Hello …", "model": "grok-3"}})
    # k1 never came: its tag is dropped at the end, and what waited behind it is released in order.
    assert parse(final, parser=p) == [Text(" world[[1]](https://example.com/a)"), End("Hello …", "grok-3")]

    p = StreamParser()
    assert parse(line({"cardAttachment": card}), tok("See " + tag.format("k9")), tok(" and"), parser=p) == [
        Text("See [[1]](https://example.com/a)"),
        Text(" and"),
    ]


def test_text_held_back_is_released_when_the_stream_ends_without_a_final_response() -> None:
    p = StreamParser()
    assert parse(tok("a <grok:re"), parser=p) == [Text("a ")]  # could still become a citation tag
    assert p.finish() == [Text("<grok:re")]
    assert p.finish() == []


def test_errors_in_band() -> None:
    rate = parse(_enc.encode({"error": {"code": 8, "message": "Too many requests", "details": []}}))
    assert rate == [ErrorEvent("Too many requests", 8, True)]
    internal = parse(_enc.encode({"error": {"code": 13, "message": "Internal error"}}))
    assert internal == [ErrorEvent("Internal error", 13, False)]
    usage = parse(line({"error": {"message": "You've reached your usage limit. Please try again later."}}))
    assert usage == [ErrorEvent("You've reached your usage limit. Please try again later.", None, True)]
    assert parse(_enc.encode({"error": "plain words"})) == [ErrorEvent("plain words", None, False)]
    quota = parse(line({"error": {"message": "Usage quota exhausted"}}))
    assert quota == [ErrorEvent("Usage quota exhausted", None, True)]
    anti_bot = parse(_enc.encode({"error": {"code": 7, "message": "Request rejected by anti-bot rules."}}))
    assert anti_bot == [ErrorEvent("Request rejected by anti-bot rules.", 7, False, anti_bot=True)]


def test_error_messages_that_are_not_text_never_show_a_python_repr() -> None:
    nested = parse(_enc.encode({"error": {"error": {"code": 8, "message": "Too many requests"}}}))
    assert nested == [ErrorEvent("Too many requests", 8, True)]
    for odd in ({"error": ["a", "b"]}, {"error": {"message": {"text": "x"}}}, {"error": {"code": 13, "message": [1]}}):
        (event,) = parse(_enc.encode(odd))
        assert isinstance(event, ErrorEvent)
        assert event.message == "upstream error" and "{" not in event.message and "[" not in event.message, odd


def test_model_response_ends_the_answer() -> None:
    p = StreamParser()
    user = line({"userResponse": {"responseId": "u1", "message": "hi", "sender": "human", "model": "grok-3"}})
    assert parse(user, parser=p) == []
    assert p.model == "grok-3"
    final = line({"modelResponse": {"responseId": "r1", "message": "Hello there", "webSearchResults": []}})
    assert parse(final, parser=p) == [End("Hello there", "grok-3")]
    explicit = line({"modelResponse": {"message": "x", "model": "grok-4"}})
    assert parse(explicit) == [End("x", "grok-4")]
    assert parse(line({"modelResponse": {"message": ["odd"]}})) == [End("", None)]


@pytest.mark.parametrize(
    ("model_response", "message"),
    [
        ({"message": "", "error": "The model encountered an error"}, "The model encountered an error"),
        ({"message": "", "error": {"code": 3, "message": "bad"}}, "bad"),
        ({"message": "", "streamErrors": [{"code": 13, "message": "interrupted"}]}, "interrupted"),
        ({"message": "", "streamErrors": ["text only"]}, "text only"),
    ],
)
def test_model_response_errors(model_response: dict[str, Any], message: str) -> None:
    (event,) = parse(line({"modelResponse": model_response}))
    assert isinstance(event, ErrorEvent)
    assert event.message == message


def test_image_generation() -> None:
    p = StreamParser()
    frames = [line({"imageAttachmentInfo": {"imageUuids": ["i0", "i1"]}})]
    for progress in (0, 50, 50, 100):
        for index in (0, 1):
            frames.append(
                line(
                    {
                        "streamingImageGenerationResponse": {
                            "imageIndex": index,
                            "progress": progress,
                            "moderated": index == 1,
                        }
                    }
                )
            )
    frames.append(line({"modelResponse": {"message": "", "generatedImageUrls": ["users/u/a.jpg", "", 5]}}))
    events = parse(*frames, parser=p)
    assert p.image_mode is True
    progress_events = [e for e in events if isinstance(e, ImageProgress)]
    assert progress_events == [
        ImageProgress(0, 0, False),
        ImageProgress(1, 0, True),
        ImageProgress(0, 50, False),
        ImageProgress(1, 50, True),
        ImageProgress(0, 100, False, final=True),
        ImageProgress(1, 100, True, final=True),
    ]
    assert events[-2:] == [Images(["users/u/a.jpg"]), End("", None)]


def test_imagine_edit_frames_carry_their_image() -> None:
    """An edit answer names its images and sends previews and finals with their asset path."""
    frames = [
        line({"streamingImageGenerationResponse": {"imageId": "a", "progress": 50, "imageUrl": "u/a-part-0/i.jpg"}}),
        line({"streamingImageGenerationResponse": {"imageId": "b", "progress": 50, "moderated": True}}),
        line({"streamingImageGenerationResponse": {"imageId": "a", "isFinal": True, "imageUrl": "u/a/i.jpg"}}),
        line({"streamingImageGenerationResponse": {"imageId": "b", "progress": 100, "moderated": True}}),
        line({"streamingImageGenerationResponse": {"progress": 100}}),  # neither index nor id: not an image
    ]
    assert parse(*frames) == [
        ImageProgress(0, 50, url="u/a-part-0/i.jpg"),
        ImageProgress(1, 50, True),
        ImageProgress(0, 100, url="u/a/i.jpg", final=True),
        ImageProgress(1, 100, True, final=True),
    ]


def test_video_generation() -> None:
    frames = [line({"streamingVideoGenerationResponse": {"progress": p}}) for p in (1, 50, 50, 95)]
    done = {"progress": 100, "videoUrl": "users/u/v.mp4", "thumbnailImageUrl": "users/u/t.jpg"}
    frames += [line({"streamingVideoGenerationResponse": done})] * 2
    events = parse(*frames)
    assert events == [
        VideoProgress(1),
        VideoProgress(50),
        VideoProgress(95),
        VideoProgress(100),
        Video("users/u/v.mp4", False, "users/u/t.jpg"),
    ]


def test_moderated_video_and_video_in_attachments() -> None:
    moderated = parse(line({"streamingVideoGenerationResponse": {"progress": 100, "moderated": True}}))
    assert moderated == [VideoProgress(100), Video(None, True)]
    attached = parse(line({"modelResponse": {"message": "done", "fileAttachments": ["id1", "users/u/v.mp4"]}}))
    assert attached == [Video("users/u/v.mp4"), End("done", None)]

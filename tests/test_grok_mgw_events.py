"""The chat WebSocket's frame parser against frames shaped like grok.com's (live captures, 2026)."""

from __future__ import annotations

import itertools
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
    Text,
)
from grok2api.grok.failures import FailureKind, classify_event
from grok2api.grok.mgw_events import MgwParser
from grok2api.grok.unknown_shapes import UnknownShapes

_enc = msgspec.json.Encoder()
_ids = itertools.count()
ANSWER = "CHANNEL_ASSISTANT_RESPONSE"
HEADER = "CHANNEL_ASSISTANT_NOTETAKER_HEADER"


def ev(kind: str, session_id: str = "conv-1", **fields: Any) -> dict[str, Any]:
    return {"session_id": session_id, "event": {"type": kind, "event_id": f"evt_{next(_ids):032x}_1", **fields}}


def frame(*events: dict[str, Any]) -> str:
    """Several events packed into one frame, as grok.com sends them."""
    return "".join(_enc.encode(e).decode() for e in events)


def chunk(step: str = "", response_id: str = "resp-1", **variant: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"phase_index": 1.0}
    if step:
        metadata["step_id"] = step
    body = {"metadata": metadata, **variant}
    return ev("response.chunk", response_id=response_id, item_id=response_id, chunk=body)


def text(value: str, channel: str = ANSWER, step: str = "") -> dict[str, Any]:
    return chunk(step, text={"text": value, "channel": channel})


def created(model: str = "fast") -> dict[str, Any]:
    return ev(
        "response.created",
        client_event_id="evt_resp_1",
        response={
            "id": "resp-1",
            "status": "in_progress",
            "output_modalities": ["text"],
            "x_grok": {"created_at": 1791450479839.0, "model": model},
        },
    )


def done(status: str = "completed") -> dict[str, Any]:
    return ev("response.done", response={"id": "resp-1", "status": status, "output_modalities": ["text"]})


def card(data: Any, *, as_string: bool = False) -> dict[str, Any]:
    json_data: Any = _enc.encode(data).decode() if as_string else data
    return ev("response.grok.output", output={"card_attachment": {"jsonData": json_data}})


def image(uuid: str, url: str, progress: Any, **extra: Any) -> dict[str, Any]:
    chunk_body = {"imageUuid": uuid, "imageUrl": url, "progress": progress, "imageModel": "imagine", **extra}
    return {
        "id": f"card-{uuid}",
        "cardType": "generated_image_card",
        "type": "render_generated_image",
        "image_chunk": chunk_body,
    }


def run(*frames: str, parser: MgwParser | None = None) -> list[Event]:
    p = parser or MgwParser(UnknownShapes())
    out: list[Event] = []
    for f in frames:
        out += p.feed(f)
    return out


def test_the_session_opens_from_a_packed_frame() -> None:
    p = MgwParser(UnknownShapes())
    init = ev("session.created", client_event_id="evt_init_x", session={"id": "conv-9"}, session_id="conv-9")
    init["session_id"] = "conv-9"
    attached = ev(
        "conversation.attached",
        session_id="conv-9",
        conversation={"id": "conv-9", "object": "realtime.conversation"},
        mode="new",
    )
    assert not p.ready
    assert p.feed(frame(init)) == [] and p.created and not p.ready
    assert p.feed(frame(attached, ev("conversation.commands.updated"))) == []
    assert p.ready and (p.session_id, p.conversation_id) == ("conv-9", "conv-9")
    assert p.unknown.counts == {}


def test_chunk_text_with_interleaved_thinking_ends_with_the_full_answer() -> None:
    p = MgwParser(UnknownShapes())
    events = run(
        frame(created("expert"), text("Thinking about your request", HEADER, step="s1")),
        frame(chunk(phase_marker={"kind": "KIND_THINKING_START", "phase_index": 1})),
        frame(text("Checking the date", HEADER, step="s2"), text("Hel"), text("lo", ANSWER)),
        frame(text("considering tone", "CHANNEL_ASSISTANT_ANALYSIS_SUMMARY"), text(" world")),
        frame(chunk(ui_layout={"reasoning_ui_layout": "UNIFIED"}), done()),
        parser=p,
    )
    assert events == [
        Reasoning("Thinking about your request"),
        Reasoning("\n\nChecking the date"),
        Text("Hel"),
        Text("lo"),
        Reasoning("\n\nconsidering tone"),
        Text(" world"),
        End("Hello world", "expert"),
    ]
    assert (p.done, p.status, p.failure) == (True, "completed", None)
    assert p.unknown.counts == {}


@pytest.mark.parametrize(
    "channel",
    [
        "CHANNEL_ASSISTANT_THINKING",
        "CHANNEL_ASSISTANT_NOTETAKER_SUMMARY",
        "CHANNEL_ASSISTANT_REASONING",
        "channel_assistant_deep_analysis",
    ],
)
def test_thinking_channels_are_reasoning(channel: str) -> None:
    assert run(frame(text("hmm", channel), text("ok"), done())) == [Reasoning("hmm"), Text("ok"), End("ok", None)]


def test_unknown_channels_are_counted_and_never_shown() -> None:
    p = MgwParser(UnknownShapes())
    events = run(frame(text("secret", "CHANNEL_TOOL_TRACE"), text("shown"), done()), parser=p)
    assert events == [Text("shown"), End("shown", None)]
    assert p.unknown.counts == {"channel:CHANNEL_TOOL_TRACE": 1}


def test_delta_family_when_no_chunk_text_arrives() -> None:
    events = run(
        frame(ev("response.output_text.delta", delta="Let me think", x_grok={"is_thinking": True})),
        frame(ev("response.output_text.delta", delta="Hi"), ev("response.output_text.delta", delta=" there")),
        frame(ev("response.output_text.done", text="Hi there!"), ev("response.content_part.done"), done()),
    )
    assert events == [Reasoning("Let me think"), Text("Hi"), Text(" there"), Text("!"), End("Hi there!", None)]


def test_output_text_done_alone_is_the_answer() -> None:
    events = run(frame(ev("response.output_item.added"), ev("response.output_text.done", text="Whole"), done()))
    assert events == [Text("Whole"), End("Whole", None)]


def test_one_family_per_response_never_both() -> None:
    chunks_first = run(
        frame(text("Hi"), ev("response.output_text.delta", delta="Hi"), ev("response.output_text.done", text="Hi")),
        frame(done()),
    )
    assert chunks_first == [Text("Hi"), End("Hi", None)]
    deltas_first = run(frame(ev("response.output_text.delta", delta="Yo"), text("Yo"), done()))
    assert deltas_first == [Text("Yo"), End("Yo", None)]
    thinking_chunk_first = run(frame(text("hm", HEADER), ev("response.output_text.delta", delta="Yo"), text("A")))
    assert thinking_chunk_first == [Reasoning("hm"), Text("A")]


def test_web_and_x_search_results() -> None:
    events = run(
        frame(chunk(tool_usage_card={"tool_usage_card_id": "tool-1", "web_search": {"args": {"query": "grok"}}})),
        frame(
            chunk(
                tool_result={
                    "tool_call_id": "tool-1",
                    "web_search": {
                        "webpages": [
                            {"url": "https://a.example/1", "title": "A", "snippet": "first"},
                            {"url": "https://b.example/2", "title": "", "snippet": "second"},
                            {"title": "no url"},
                        ]
                    },
                }
            )
        ),
        frame(chunk(tool_usage_card={"tool_usage_card_id": "tool-2", "x_search": {"args": {"query": "from:x"}}})),
        frame(
            chunk(
                tool_result={
                    "tool_call_id": "tool-2",
                    "x_post": {
                        "posts": [
                            {"userhandle": "xai", "name": "xAI", "text": "Grok 4.6", "post_id": "123"},
                            {"userhandle": "anon", "text": "no id"},
                        ]
                    },
                }
            )
        ),
        frame(ev("response.search.result", result={"url": "https://a.example/1", "title": "A again"})),
        frame(ev("response.search.result", result={"web_results": [{"url": "https://c.example", "title": "C"}]})),
    )
    assert events == [
        SearchResults(
            [
                SearchResult("A", "https://a.example/1", "first"),
                SearchResult("https://b.example/2", "https://b.example/2", "second"),
            ]
        ),
        SearchResults([SearchResult("xAI", "https://x.com/xai/status/123", "Grok 4.6")]),
        SearchResults([SearchResult("C", "https://c.example")]),
    ]


def test_render_citation_chunks_become_numbered_links_in_order() -> None:
    cite_a = {"id": "c1", "kind": "CITATION_KIND_WEB_PAGE", "url": "https://a.example/x", "citation_id": 1}
    cite_b = {"id": "c2", "kind": "CITATION_KIND_X_POST", "url": "https://x.com/a/status/1", "citation_id": 2.0}
    events = run(
        frame(text("Fact one"), chunk(render_citation=cite_a), chunk(render_citation=cite_a)),
        frame(chunk(render_citation=cite_b), text(". Fact two"), chunk(render_citation=cite_a)),
        frame(chunk(render_citation={"url": "javascript:alert(1)"}), done()),
    )
    assert events == [
        Text("Fact one"),
        Text("[[1]](https://a.example/x)"),
        Text("[[2]](https://x.com/a/status/1)"),
        Text(". Fact two"),
        Text("[[1]](https://a.example/x)"),
        End("Fact one[[1]](https://a.example/x)[[2]](https://x.com/a/status/1). Fact two[[1]](https://a.example/x)"),
    ]


TAG = '<grok:render card_id="{}" card_type="citation_card" type="render_inline_citation">'
TAG += '<argument name="citation_id">{}</argument></grok:render>'


def test_render_tags_wait_for_their_card_and_never_show_raw() -> None:
    events = run(
        frame(text("Grok is fast" + TAG.format("k1", 1)[:20])),
        frame(text(TAG.format("k1", 1)[20:] + " and cheap"), text(". More" + TAG.format("k2", 2))),
        frame(card({"id": "k1", "url": "https://a.example"})),
        frame(card({"id": "k2", "url": "https://b.example/(x)"}, as_string=True), text(" end")),
        frame(text("Known" + TAG.format("k1", 3) + "!")),
        frame(done()),
    )
    assert events == [
        Text("Grok is fast"),
        Text("[[1]](https://a.example) and cheap. More"),
        Text("[[2]](https://b.example/%28x%29)"),
        Text(" end"),
        Text("Known[[1]](https://a.example)!"),
        End(
            "Grok is fast[[1]](https://a.example) and cheap. More[[2]](https://b.example/%28x%29) endKnown[[1]](https://a.example)!"
        ),
    ]


def test_text_behind_a_missing_card_waits_for_that_card_only() -> None:
    p = MgwParser(UnknownShapes())
    first = p.feed(frame(text('Start<grok:render card_id="late"/>')))
    pieces = [p.feed(frame(text(f" w{i}"))) for i in range(200)]
    other = p.feed(frame(card({"id": "other", "url": "https://o.example"})))
    released = p.feed(frame(card({"id": "late", "url": "https://l.example"})))
    words = "".join(f" w{i}" for i in range(200))
    assert (first, other) == ([Text("Start")], []) and not any(pieces)
    assert released == [Text("[[1]](https://l.example)" + words)]


def test_citation_chunks_wait_behind_a_held_tag() -> None:
    events = run(
        frame(text("A" + TAG.format("k1", 1)), chunk(render_citation={"url": "https://z.example"}), text("B")),
        frame(card({"id": "k1", "url": "https://a.example"}), done()),
    )
    assert events == [
        Text("A"),
        Text("[[1]](https://a.example)[[2]](https://z.example)B"),
        End("A[[1]](https://a.example)[[2]](https://z.example)B"),
    ]


def test_unresolved_tags_are_dropped_when_the_turn_ends() -> None:
    events = run(
        frame(text("x < y and <grok is" + TAG.format("gone", 1) + " after")),
        frame(text(' more <grok:render card_id="cut"'), done()),
    )
    assert events == [Text("x < y and <grok is"), Text(" after more "), End("x < y and <grok is after more ")]


def test_a_partial_tag_start_is_held_until_it_is_decided() -> None:
    assert run(frame(text("a <gro"))) == [Text("a ")]
    assert run(frame(text("a <gro"), text("und"))) == [Text("a "), Text("<ground")]
    assert run(frame(text("a <"), done())) == [Text("a "), Text("<"), End("a <")]


def test_generated_images_progress_then_final_asset_keys() -> None:
    key = "users/u1/generated/img-1/image.jpg"
    events = run(
        frame(created(), text("Here you go")),
        frame(card(image("img-1", "data:image/png;base64,AAAA", 50), as_string=True)),
        frame(card(image("img-2", "data:image/png;base64,BBBB", 30.0))),
        frame(card(image("img-1", "users/u1/generated/img-1-part-1/image.jpg", 100))),
        frame(card(image("img-1", key, "100"), as_string=True)),
        frame(card(image("img-2", "", 40, moderated=True)), card(image("img-2", "", 60, moderated=True))),
        frame(card(image("img-1", key, 100))),
        frame(done()),
    )
    assert events == [
        Text("Here you go"),
        ImageProgress(0, 50),
        ImageProgress(1, 30),
        ImageProgress(0, 100),
        ImageProgress(1, 40, moderated=True),
        Images([key]),
        End("Here you go", "fast"),
    ]


def test_images_alone_are_an_answer() -> None:
    key = "users/u1/generated/img-1/image.jpg"
    card_event = ev("response.grok.output", output={"card_attachment": image("img-1", key, 100)})
    assert run(frame(card_event, done())) == [ImageProgress(0, 100), Images([key]), End("", None)]


@pytest.mark.parametrize(
    ("error", "expected", "kind"),
    [
        (
            {"code": "anti_bot", "message": "Request rejected by anti-bot rules."},
            ErrorEvent("Request rejected by anti-bot rules.", None, False, anti_bot=True),
            FailureKind.EGRESS,
        ),
        ({"code": "anti_bot"}, ErrorEvent("anti_bot", None, False, anti_bot=True), FailureKind.EGRESS),
        (
            {"code": "rate_limited", "message": "You've reached your usage limit for Expert."},
            ErrorEvent("You've reached your usage limit for Expert.", None, True),
            FailureKind.RATE_LIMITED,
        ),
        ({"code": 8.0, "message": "slow down"}, ErrorEvent("slow down", 8, True), FailureKind.RATE_LIMITED),
        (
            {"code": "conversation_not_found", "message": "Conversation not found"},
            ErrorEvent("Conversation not found"),
            FailureKind.SERVER,
        ),
    ],
)
def test_error_events_end_the_turn(error: dict[str, Any], expected: ErrorEvent, kind: FailureKind) -> None:
    p = MgwParser(UnknownShapes())
    events = run(frame(text("partial"), ev("error", error=error), text("never")), frame(done()), parser=p)
    assert events == [Text("partial"), expected]
    assert p.done and p.failure == expected and p.status is None
    assert classify_event(expected).kind == kind


def test_stream_errors_end_the_turn() -> None:
    p = MgwParser(UnknownShapes())
    stream_error = ev(
        "response.grok.output", output={"stream_error": {"message": "Usage quota exhausted", "kind": "x"}}
    )
    assert run(frame(stream_error, done()), parser=p) == [ErrorEvent("Usage quota exhausted", None, True)]
    assert p.done and p.failure is not None and p.status is None


def test_a_failed_status_or_an_early_session_end_is_a_failure() -> None:
    p = MgwParser(UnknownShapes())
    (failed,) = run(frame(text("x"), done("failed")), parser=p)[1:]
    assert isinstance(failed, ErrorEvent) and "failed" in failed.message
    assert (p.done, p.status, p.failure) == (True, "failed", failed)
    ended = run(frame(text("x"), ev("session.ended", reason="idle")))
    assert isinstance(ended[-1], ErrorEvent) and "before the answer completed" in ended[-1].message


@pytest.mark.parametrize(
    "frames",
    [
        [frame(done())],
        [frame(text("   ")), frame(done())],
        [frame(text("only thinking", HEADER), done())],
    ],
)
def test_an_empty_completed_answer_is_a_server_failure(frames: list[str]) -> None:
    p = MgwParser(UnknownShapes())
    failure = run(*frames, parser=p)[-1]
    assert isinstance(failure, ErrorEvent) and not failure.rate_limited and not failure.anti_bot
    assert p.done and p.failure == failure and p.status == "completed"
    assert classify_event(failure).kind == FailureKind.SERVER


def test_what_trails_response_done_is_ignored() -> None:
    p = MgwParser(UnknownShapes())
    late = text("Thought for 3s", HEADER)
    late["event"]["response_id"] = late["event"]["item_id"] = ""
    follow = chunk(response_id="", follow_up_suggestions={"suggestions": [{"label": "More?"}]})
    events = run(frame(text("Answer"), done(), late, text("extra")), frame(follow, late), parser=p)
    assert events == [Text("Answer"), End("Answer", None)]
    assert p.unknown.counts == {}


def test_unknown_events_chunks_and_outputs_are_counted_and_skipped() -> None:
    p = MgwParser(UnknownShapes())
    events = run(
        frame(ev("pong"), ev("conversation.queue.updated"), ev("response.persisted"), ev("conversation.title.updated")),
        frame(ev("response.hologram", data={}), chunk(hologram={"x": 1}), ev("response.hologram")),
        frame(ev("response.grok.output", output={"hologram_card": {}}), {"no": "type"}),
        frame(text("fine"), done()),
        parser=p,
    )
    assert events == [Text("fine"), End("fine", None)]
    assert p.unknown.counts == {
        "event:response.hologram": 2,
        "chunk:hologram": 1,
        "output:hologram_card": 1,
        "event:<none>": 1,
    }


@pytest.mark.parametrize("raw", ["", "   ", "not json", "[1, 2]", '{"event": '])
def test_malformed_frames_yield_nothing(raw: str) -> None:
    p = MgwParser(UnknownShapes())
    assert p.feed(raw) == [] and not p.done

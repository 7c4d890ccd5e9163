"""The scenarios of one mgw answer, in grok.com's order: lifecycle, thinking, search, answer, images, the end.

The session's mode sets the style: ``fast`` answers plainly (``[[think]]`` makes it think), the other modes think
first, each on its own channel. Text after ``response.done`` (a notetaker line, follow-up suggestions) carries
empty ids, as the live captures show.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from .fake_accounts import FakeAccount
from .fake_answer import CITE_CARD_ID, CITE_TOKEN, EMOJI_TOKENS, SEARCH_RESULTS, THINK_TOKENS, answer_tokens
from .fake_faults import Fault
from .fake_http import JsonDict, encode_json
from .fake_media import TINY_JPEG
from .fake_mgw_script import (
    ANALYSIS,
    NOTETAKER_HEADER,
    NOTETAKER_SUMMARY,
    REASONING,
    THINKING,
    Turn,
    TurnScript,
    event,
)
from .fake_state import FakeState
from .fake_tools import tool_answer

THINK_CHANNELS = {"fast": REASONING, "auto": ANALYSIS, "expert": REASONING, "heavy": THINKING}
THINK_HEADER = "Thinking about your request"
X_POST = {"userhandle": "fakegrok", "name": "Fake Grok", "text": "A post about it.", "post_id": "1900000000000000001"}
X_POST_URL = f"https://x.com/{X_POST['userhandle']}/status/{X_POST['post_id']}"
PREVIEW_DATA_URL = "data:image/jpeg;base64," + base64.b64encode(TINY_JPEG).decode()
# What the `unknown` fault slips in, so a client's counter of unknown types can be checked.
UNKNOWN_EVENT = "response.fake_unknown.updated"
UNKNOWN_CHUNK = "fake_unknown_widget"
UNKNOWN_CHANNEL = "CHANNEL_ASSISTANT_FAKE_UNKNOWN"


def build_turn(state: FakeState, account: FakeAccount, turn: Turn, fault: Fault | None, response_id: str) -> TurnScript:
    script = TurnScript(turn, fault, response_id)
    _opening(script, state.new_id)
    if script.fault_name != "empty":
        if script.fault_name == "unknown":
            _unknown(script)
        _thinking(script)
        if turn.draw:
            _draw(state, script, account)
        else:
            _answer(script)
        script.mid_stream()
    _closing(script)
    return script


def _opening(script: TurnScript, new_id: Callable[[], str]) -> None:
    turn, rid = script.turn, script.response_id
    user_item = {"id": new_id(), "type": "message", "role": "user", "status": "completed"}
    # The queue and item events come packed in one frame, like other lifecycle pairs.
    script.send(
        event("conversation.queue.updated", queue={"items": []}), event("conversation.item.added", item=user_item)
    )
    response = {
        "id": rid,
        "status": "in_progress",
        "output_modalities": ["text"],
        "x_grok": {"created_at": round(time.time() * 1000, 3), "model": turn.mode},
    }
    script.send(event("response.created", client_event_id=turn.client_event_id, response=response))
    item = {"id": rid, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    script.send(event("response.output_item.added", response_id=rid, output_index=0, item=item))
    part = {"type": "output_text", "text": ""}
    script.send(event("response.content_part.added", **script.ids(), output_index=0, content_index=0, part=part))
    if turn.use_chunk:
        layout = {"reasoning_ui_layout": "UNIFIED", "effort": "LOW", "steer_model_id": "grok-4"}
        script.send(script.chunk({"ui_layout": layout}))


def _thinking(script: TurnScript) -> None:
    turn = script.turn
    thinks = turn.markers.has("think") or turn.mode != "fast"
    search = turn.markers.has("search")
    if not (thinks or search):
        return
    if thinks:
        # The first notetaker line comes before the phase marker.
        script.text(THINK_HEADER, NOTETAKER_HEADER)
    script.phase_marker("KIND_THINKING_START")
    if search:
        _search(script)
    if thinks:
        channel = THINK_CHANNELS.get(turn.mode, ANALYSIS)
        for text in THINK_TOKENS:
            script.text(text, channel)
        if turn.mode == "expert":
            script.text("Weighed the request.", NOTETAKER_SUMMARY)
    script.step += 1
    script.phase_marker("KIND_RESPONSE_START")


def _search(script: TurnScript) -> None:
    query = script.turn.prompt[-60:] or "fake grok"
    pages = [{"url": r["url"], "title": r["title"], "snippet": r["preview"]} for r in SEARCH_RESULTS]
    cards: list[tuple[str, JsonDict]] = [
        ("tool_usage_card", {"tool_usage_card_id": "t1", "web_search": {"args": {"query": query}}}),
        ("tool_result", {"tool_call_id": "t1", "web_search": {"webpages": pages}}),
        ("tool_usage_card", {"tool_usage_card_id": "t2", "x_search": {"args": {"query": query}}}),
        ("tool_result", {"tool_call_id": "t2", "x_post": {"posts": [X_POST]}}),
    ]
    for kind, body in cards:
        if script.turn.use_chunk:
            script.send(script.chunk({kind: body}))
        else:
            script.send(script.output({kind: body}))
    if not script.turn.use_chunk:
        for page in pages:
            script.send(
                event("response.search.result", **script.ids(), result={"url": page["url"], "title": page["title"]})
            )


def _card(script: TurnScript, card: JsonDict) -> JsonDict:
    """A card attachment, wrapped in a ``jsonData`` string under ``[[card-json]]``."""
    if script.turn.markers.has("card-json"):
        return {"jsonData": encode_json(card).decode()}
    return card


def _answer(script: TurnScript) -> None:
    turn = script.turn
    tokens = tool_answer(turn.prompt, turn.markers) or answer_tokens(turn.prompt, turn.markers.token_count)
    if turn.markers.has("echo"):
        tokens = [encode_json(turn.chunks).decode()]
    for index, text in enumerate(tokens):
        script.say(text)
        if index == 0:
            _cite(script)
    if turn.markers.has("emoji"):
        for text in EMOJI_TOKENS:
            script.say(text)


def _cite(script: TurnScript) -> None:
    markers = script.turn.markers
    url = SEARCH_RESULTS[0]["url"]
    if markers.has("cite") and script.turn.use_chunk and not markers.has("cite-card"):
        web = {"id": CITE_CARD_ID, "kind": "CITATION_KIND_WEB_PAGE", "url": url, "citation_id": 0}
        script.send(script.chunk({"render_citation": web}))
        if markers.has("search"):
            post = {"id": "x1", "kind": "CITATION_KIND_X_POST", "url": X_POST_URL, "citation_id": 1}
            script.send(script.chunk({"render_citation": post}))
    elif markers.has("cite") or markers.has("cite-card"):
        card = {"id": CITE_CARD_ID, "url": url, "type": "render_inline_citation", "cardType": "citation_card"}
        script.send(script.output({"card_attachment": _card(script, card)}))
        script.say(CITE_TOKEN)


def _draw(state: FakeState, script: TurnScript, account: FakeAccount) -> None:
    """Progress frames with inline previews, then each image's asset key (registered for the account)."""
    turn = script.turn
    image_ids = [state.new_id() for _ in range(turn.image_count)]
    moderated = turn.image_count - 1 if turn.markers.has("draw-moderated") else -1
    prompt = turn.prompt or "an image"
    script.say("Generating images…")
    for progress in (50, 100):
        for index, image_id in enumerate(image_ids):
            chunk: JsonDict = {
                "imageUuid": image_id,
                "imageIndex": index,
                "imageModel": "imagine",
                "imagePrompt": {"prompt": prompt, "upsampledPrompt": prompt},
                "progress": progress,
                "moderated": progress == 100 and index == moderated,
            }
            if progress < 100:
                chunk["imageUrl"] = PREVIEW_DATA_URL
            elif index != moderated:
                chunk["imageUrl"] = f"users/{account.user_id}/generated/{image_id}/image.jpg"
                state.register_asset(chunk["imageUrl"], account.token)
            card = {
                "id": image_id[:8],
                "cardType": "generated_image_card",
                "type": "render_generated_image",
                "prompt": prompt,
                "image_chunk": chunk,
            }
            script.send(script.output({"card_attachment": _card(script, card)}))


def _unknown(script: TurnScript) -> None:
    script.send(event(UNKNOWN_EVENT, **script.ids(), detail={"n": 1}))
    if script.turn.use_chunk:
        script.send(script.chunk({UNKNOWN_CHUNK: {"n": 1}}))
        script.send(script.chunk({"text": {"text": "not for the user", "channel": UNKNOWN_CHANNEL}}))
    else:
        script.send(script.output({UNKNOWN_CHUNK: {"n": 1}}))


def _closing(script: TurnScript) -> None:
    turn, rid = script.turn, script.response_id
    text = "".join(script.answer)
    where = {**script.ids(), "output_index": 0, "content_index": 0}
    script.send(event("response.output_text.done", **where, text=text))
    script.send(event("response.content_part.done", **where, part={"type": "output_text", "text": text}))
    item = {"id": rid, "type": "message", "role": "assistant", "status": "completed"}
    script.send(event("response.output_item.done", response_id=rid, output_index=0, item=item))
    done = {"id": rid, "status": "completed", "output_modalities": ["text"], "usage": {}}
    script.send(event("response.done", response=done))
    after = [event("response.persisted", response_id=rid, status="ok")]
    if not turn.temporary:
        after.append(event("conversation.title.updated", title=" ".join(turn.prompt.split()[:5]) or "New chat"))
    if turn.use_chunk:
        after.append(
            script.chunk({"text": {"text": "Wrapped up the answer", "channel": NOTETAKER_HEADER}}, trailing=True)
        )
    script.send(*after)
    if turn.use_chunk and turn.x_grok.get("disable_text_follow_ups") is not True:
        suggestion = {
            "label": "Tell me more",
            "properties": {"message_type": "MESSAGE_TYPE_FOLLOW_UP", "follow_up_type": "FOLLOW_UP_TYPE_QUESTION"},
            "tool_overrides": {"image_gen": False},
        }
        script.send(script.chunk({"follow_up_suggestions": {"suggestions": [suggestion]}}, trailing=True))

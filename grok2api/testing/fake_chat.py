"""E1 ``POST /rest/app-chat/conversations/new``: admit the call, build the scenario's script, stream it."""

from __future__ import annotations

from aiohttp import web

from .fake_accounts import FakeAccount
from .fake_answer import answer_phase, thinking_phase
from .fake_chat_request import Chat, parse_chat
from .fake_errors import ERR_RATE, ERR_TIER, refusal_response
from .fake_faults import PRE_STREAM_FAULTS, Fault
from .fake_generation import draw_phase, video_phase
from .fake_http import Reject, bad_request, json_body, json_response
from .fake_imagine_edit import handle_edit, is_edit
from .fake_script import Script, conversation_line, finish, user_response
from .fake_state import FakeState, state_of
from .fake_stream import play
from .fake_video import admit_video

CHAT_PATH = "/rest/app-chat/conversations/new"

routes = web.RouteTableDef()


@routes.post(CHAT_PATH)
async def handle_chat(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    account = state.resolve(request)
    body = json_body(request)
    if is_edit(body):
        return await handle_edit(request, state, account, body)
    chat = parse_chat(body, account)
    fault = state.take_fault("chat", account.token) or chat.markers.fault
    if fault is not None and fault.name in PRE_STREAM_FAULTS:
        return _pre_stream_fault(fault)
    if chat.video is not None:
        admit_video(account, chat.video)  # Imagine counts videos apart from the chat modes
    else:
        _admit_chat(state, account, chat)
    script = _build_script(state, account, chat, fault)
    framing = "sse" if chat.markers.has("sse") else state.framing
    delay = fault.seconds(0.1) if fault is not None and fault.name == "slow-tokens" else state.token_delay
    first = state.first_line_delay + (fault.seconds(1.0) if fault is not None and fault.name == "stall-first" else 0)
    account.in_flight += 1
    try:
        return await play(request, script, framing, delay, first)
    finally:
        account.in_flight -= 1
        if script.video is not None:
            script.video.delivered = script.delivered


def _pre_stream_fault(fault: Fault) -> web.Response:
    """Faults that answer instead of the stream, shaped like the real failure."""
    if fault.name == "empty":
        return web.Response(status=200, body=b"", content_type="application/json")
    return refusal_response(fault)


def _admit_chat(state: FakeState, account: FakeAccount, chat: Chat) -> None:
    """The mode (known, offered to the tier), the concurrency cap, then one query of the mode's window."""
    refusal = state.mode_refusal(account, chat.mode)
    if refusal == "unknown":
        raise bad_request(f"Invalid mode: {chat.mode}")
    if refusal in ("unavailable", "tier"):
        raise Reject(json_response(403, ERR_TIER))
    if refusal == "busy":
        raise Reject(json_response(429, ERR_RATE))
    if refusal == "quota" or not account.window(chat.mode).take():
        raise Reject(json_response(429, ERR_RATE, {"Retry-After": str(account.seconds_left(chat.mode))}))


def _build_script(state: FakeState, account: FakeAccount, chat: Chat, fault: Fault | None) -> Script:
    script = Script(chat, fault, state.new_id)
    script.line(conversation_line(script))
    script.frame(user_response(script))
    if chat.video is not None:
        script.video = video_phase(state, script, account, chat.video)
        return script
    thinking_phase(script)
    if chat.markers.has("unclosed-think"):
        script.mid_stream()
        return script
    if chat.draw:
        finish(script, generatedImageUrls=draw_phase(state, script, account))
    else:
        finish(script, **answer_phase(script))
    return script

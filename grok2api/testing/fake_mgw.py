"""The mgw chat: ``GET /ws/mgw/?uid=<userId>`` upgraded to a WebSocket, one session per connection.

Client ``session.create`` → ``session.created`` + ``conversation.attached``; ``conversation.item.create`` (input
chunks: text and ``file_mention`` of the account's uploads) and ``response.create`` → one answer of the session's
mode, costing one query of its window; ``ping`` → ``pong``. Problems the client caused come back as ``error``
events, as grok.com sends them. With ``mgw_idle_seconds`` set, a socket that says nothing that long (no answer
playing) is closed: grok.com may let a silent socket go (clients ping it; its own limit is not documented).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace

from aiohttp import WSCloseCode, WSMsgType, web

from .fake_accounts import FakeAccount
from .fake_chat_request import parse_markers, strip_markers
from .fake_errors import ERR_TIER, USAGE_LIMIT_MESSAGE
from .fake_faults import CHAT_FAULTS, IN_STREAM_FAULTS, MGW_FAULTS, MGW_FROM_CHAT, MGW_STREAM_FAULTS, Fault
from .fake_http import JsonDict
from .fake_mgw_answer import build_turn
from .fake_mgw_handshake import admit, plain_get
from .fake_mgw_script import INBAND_ERRORS, OPENING_ERRORS, Turn, error_event, event
from .fake_mgw_wire import Sender, pack_pairs, play
from .fake_records import MgwRecord, shrink
from .fake_state import FakeState, state_of

MGW_PATH = "/ws/mgw/"
MAX_FRAME = 16 * 1024 * 1024
# Chat faults a pushed queue may hand the socket once a response was asked for.
_CHAT_STREAM_FAULTS = IN_STREAM_FAULTS | {"empty"}
_REFUSALS: dict[str, tuple[str, str]] = {
    "tier": ("permission_denied", str(ERR_TIER["error"]["message"])),
    "busy": ("resource_exhausted", "Too many requests"),
    "quota": ("resource_exhausted", USAGE_LIMIT_MESSAGE),
}

routes = web.RouteTableDef()


@routes.get(MGW_PATH)
async def handle_mgw(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    ws = web.WebSocketResponse(protocols=("json",), max_msg_size=MAX_FRAME)
    if not ws.can_prepare(request).ok:
        return plain_get(state, request)
    account = admit(state, request)
    if isinstance(account, web.Response):
        return account
    record = state.record_mgw(request, account.token, account.user_id)
    return await state.hold_socket(request, ws, record, MgwSession(state, request, ws, account, record).run)


def split_events(text: str) -> list[object]:
    """The JSON values of one frame, which may hold several back to back."""
    decoder = json.JSONDecoder()
    values: list[object] = []
    index = 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index < len(text):
            value, index = decoder.raw_decode(text, index)
            values.append(value)
    return values


class MgwSession:
    """One connection: the session the client created, its pending user message and the answer being played."""

    def __init__(
        self, state: FakeState, request: web.Request, ws: web.WebSocketResponse, account: FakeAccount, rec: MgwRecord
    ) -> None:
        self.state = state
        self.request = request
        self.ws = ws
        self.account = account
        self.record = rec
        self.sender = Sender(ws, rec, state.new_hex())
        self.mode: str | None = None
        self.x_grok: JsonDict = {}
        self.pending: tuple[list[JsonDict], list[str]] | None = None
        self.answering: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            while True:
                try:
                    message = await self.ws.receive(timeout=self._idle_timeout())
                except TimeoutError:  # silent too long: let the socket go
                    self.record.idle_closed = True
                    await self.ws.close(code=WSCloseCode.OK, message=b"idle")
                    break
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if message.type == WSMsgType.TEXT:
                    await self.on_frame(message.data)
        except ConnectionError:  # the client left while we answered it
            pass
        finally:
            if self.answering is not None:
                self.answering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.answering

    def _idle_timeout(self) -> float | None:
        """How long the next client frame may take: forever while an answer plays (the socket is not silent)."""
        if self.answering is not None and not self.answering.done():
            return None
        return self.state.mgw_idle_seconds

    async def on_frame(self, text: str) -> None:
        try:
            values = split_events(text)
        except ValueError:
            await self.sender.send(error_event("invalid_argument", "Invalid JSON"))
            return
        for value in values:
            envelope = value if isinstance(value, dict) else {}
            self.record.received.append(shrink(envelope))
            client_event = envelope.get("event")
            if not isinstance(client_event, dict):
                await self.sender.send(error_event("invalid_argument", "Missing event"))
                continue
            await self.on_event(envelope, client_event)

    async def on_event(self, envelope: JsonDict, client_event: JsonDict) -> None:
        kind = client_event.get("type")
        if kind == "ping":
            await self.sender.send(event("pong", client_event_id=client_event.get("event_id")))
        elif kind == "session.create":
            await self.on_session_create(envelope, client_event)
        elif kind in ("conversation.item.create", "response.create"):
            if not self.sender.session_id or envelope.get("session_id") != self.sender.session_id:
                await self.sender.send(error_event("conversation_not_found", "Conversation not found"))
                return
            item = client_event.get("item")
            if kind == "conversation.item.create" and not isinstance(item, dict):
                await self.sender.send(error_event("invalid_argument", "Missing item"))
                return
            # One client sends the item inside response.create instead of on its own.
            if isinstance(item, dict) and not await self.on_item(client_event, item):
                return
            if kind == "response.create":
                await self.on_response_create(client_event)

    async def on_session_create(self, envelope: JsonDict, client_event: JsonDict) -> None:
        session = client_event.get("session")
        session = session if isinstance(session, dict) else {}
        model, x_grok = session.get("model"), session.get("x_grok")
        self.x_grok = x_grok if isinstance(x_grok, dict) else {}
        self.record.x_grok = dict(self.x_grok)
        self.record.mode = model if isinstance(model, str) else None
        if not isinstance(model, str) or model not in self.state.modes:
            await self.sender.send(error_event("invalid_argument", f"Unknown model: {model}"))
            return
        self.mode = model
        existing = self.x_grok.get("conversation_id") or envelope.get("session_id")
        session_id = existing if isinstance(existing, str) and existing else self.state.new_id()
        self.sender.session_id = self.record.session_id = session_id
        created = {"id": session_id, "object": "realtime.session", "model": model, "x_grok": self.x_grok}
        await self.sender.send(event("session.created", client_event_id=client_event.get("event_id"), session=created))
        conversation = {"id": session_id, "object": "realtime.conversation"}
        await self.sender.send(
            event("conversation.attached", conversation=conversation, mode="existing" if existing else "new")
        )

    async def on_item(self, client_event: JsonDict, item: JsonDict) -> bool:
        """Take the user message; False (after an ``error`` event) when it names files the account lacks."""
        chunks = _input_chunks(item)
        named = [item.get("file_attachment_ids"), client_event.get("file_attachment_ids")]
        file_ids = [f for f in map(_file_id, chunks) if f is not None]
        file_ids += [f for ids in named if isinstance(ids, list) for f in ids if isinstance(f, str)]
        self.record.items.append(shrink(chunks))
        self.record.file_attachment_ids.extend(file_ids)
        missing = next((f for f in file_ids if f not in self.account.uploads), None)
        if missing is not None:
            await self.sender.send(error_event("not_found", f"File {missing} not found"))
            return False
        self.pending = (chunks, list(dict.fromkeys(file_ids)))
        return True

    async def on_response_create(self, client_event: JsonDict) -> None:
        if self.pending is None:
            await self.sender.send(error_event("invalid_argument", "No user message to respond to"))
        elif self.answering is not None and not self.answering.done():
            await self.sender.send(error_event("resource_exhausted", "A response is already in progress"))
        else:
            chunks, file_ids = self.pending
            self.pending = None
            text = "\n".join(str(c["text"].get("text", "")) for c in chunks if isinstance(c.get("text"), dict))
            markers = parse_markers(text, CHAT_FAULTS | MGW_FAULTS)
            event_id = str(client_event.get("event_id", ""))
            turn = Turn(str(self.mode), self.x_grok, chunks, file_ids, strip_markers(text), markers, event_id)
            self.answering = asyncio.create_task(self.answer(turn))

    async def answer(self, turn: Turn) -> None:
        with contextlib.suppress(ConnectionError):  # the client may leave at any point of its answer
            await self._answer(turn)

    async def _answer(self, turn: Turn) -> None:
        fault = self._take_fault(turn)
        name = fault.name if fault is not None else None
        if name in OPENING_ERRORS:
            await self.sender.send(error_event(*INBAND_ERRORS[str(name)]))
            return
        if name == "403-cf":  # a Cloudflare cut has no words over a socket
            if self.request.transport is not None:
                self.request.transport.abort()
            return
        refusal = self.state.mode_refusal(self.account, turn.mode)
        if refusal is not None:
            code, message = _REFUSALS.get(refusal, ("unavailable", f"Mode {turn.mode} is not available right now"))
            await self.sender.send(error_event(code, message))
            return
        self.account.window(turn.mode).take()
        self.account.in_flight += 1
        try:
            response_id = self.state.new_id()
            self.record.responses.append(response_id)
            script = build_turn(self.state, self.account, turn, fault, response_id)
            frames = pack_pairs(script.frames) if turn.markers.has("packed") or name == "multi-json" else script.frames
            first = self.state.first_line_delay + (fault.seconds(1.0) if fault and name == "stall-first" else 0.0)
            if first > 0:
                await asyncio.sleep(first)
            delay = fault.seconds(0.1) if fault and name == "slow-tokens" else self.state.token_delay
            await play(self.sender, frames, self.request.transport, delay)
        finally:
            self.account.in_flight -= 1

    def _take_fault(self, turn: Turn) -> Fault | None:
        """A queued mgw fault, else a queued chat fault, else the prompt's; named in mgw terms."""
        token = self.account.token
        fault = (
            self.state.take_fault("mgw", token, MGW_STREAM_FAULTS)
            or self.state.take_fault("chat", token, _CHAT_STREAM_FAULTS)
            or turn.markers.fault
        )
        if fault is None:
            return None
        name = fault.name.removeprefix("mgw-")
        return replace(fault, name=MGW_FROM_CHAT.get(name, name))


def _input_chunks(item: JsonDict) -> list[JsonDict]:
    """``x_grok.input_chunks``, or the Realtime ``content`` list some clients send, as input chunks."""
    x_grok = item.get("x_grok")
    chunks = x_grok.get("input_chunks") if isinstance(x_grok, dict) else None
    if isinstance(chunks, list):
        return [c for c in chunks if isinstance(c, dict)]
    content = item.get("content")
    parts = content if isinstance(content, list) else []
    return [{"text": {"text": p["text"]}} for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _file_id(chunk: JsonDict) -> str | None:
    mention = chunk.get("mention")
    target = mention.get("target") if isinstance(mention, dict) else None
    file_mention = target.get("file_mention") if isinstance(target, dict) else None
    file_id = file_mention.get("file_id") if isinstance(file_mention, dict) else None
    return file_id if isinstance(file_id, str) else None

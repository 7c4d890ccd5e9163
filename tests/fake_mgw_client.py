"""A bare mgw client for the fake grok.com's WebSocket tests: handshake headers, the §2.1 client events, and
reading frames (several JSON events may share one) until the answer is over."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from grok2api.testing.fake_grok import FakeGrok

Event = dict[str, Any]


def handshake_headers(fake: FakeGrok, token: str, uid: str | None = None, origin: str | None = None) -> dict[str, str]:
    uid = fake.user_id(token) if uid is None else uid
    return {
        "Origin": fake.base_url if origin is None else origin,
        "User-Agent": "Mozilla/5.0 (Macintosh) Chrome/146.0.0.0 Safari/537.36",
        "Cache-Control": "no-cache",
        "Cookie": f"sso={token}; sso-rw={token}; x-userid={uid}",
    }


def split_frame(text: str) -> list[Event]:
    decoder = json.JSONDecoder()
    out: list[Event] = []
    index = 0
    while index < len(text):
        value, index = decoder.raw_decode(text, index)
        out.append(value)
    return out


class MgwClient:
    """One socket: ``create`` a session, ``ask`` a question, ``read`` what comes back."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.session_id = ""
        self.frames: list[str] = []
        self.closed = False

    async def send(self, event: Event, *, session: bool = True) -> None:
        envelope: Event = {"event": event}
        if session:
            envelope["session_id"] = self.session_id
        await self.ws.send_str(json.dumps(envelope))

    async def create(self, mode: str = "fast", **x_grok: Any) -> list[Event]:
        flags = {"use_chunk": True, "is_temporary": True, "disable_memory": True, "keep_context": False, **x_grok}
        session = {"model": mode, "x_grok": flags}
        await self.send({"type": "session.create", "event_id": "evt_init_1", "session": session}, session=False)
        events = await self.read(until=lambda e: e["event"]["type"] in ("conversation.attached", "error"))
        self.session_id = events[0]["session_id"]
        return events

    async def ask(self, text: str, files: tuple[str, ...] = (), **item: Any) -> None:
        chunks: list[Event] = [{"mention": {"target": {"file_mention": {"file_id": f}}}} for f in files]
        chunks.append({"text": {"text": text}})
        message = {"type": "message", "role": "user", "x_grok": {"client_message_id": "m1", "input_chunks": chunks}}
        await self.send({"type": "conversation.item.create", "event_id": "evt_msg_1", "item": {**message, **item}})
        await self.send({"type": "response.create", "event_id": "evt_resp_1"})

    async def read(self, until: Any = None, idle: float = 0.3, limit: float = 10.0) -> list[Event]:
        """Events until ``until(envelope)`` holds, the line is quiet for ``idle`` s, or the socket closes."""
        events: list[Event] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            try:
                message = await self.ws.receive(timeout=idle)
            except TimeoutError:
                return events
            if message.type != aiohttp.WSMsgType.TEXT:
                self.closed = True
                return events
            self.frames.append(message.data)
            try:
                found = split_frame(message.data) if message.data.strip() else []
            except ValueError:  # the fake's `malformed` fault; `frames` keeps it
                continue
            for envelope in found:
                events.append(envelope)
                if until is not None and until(envelope):
                    return events
        return events

    async def answer(self, text: str, **item: Any) -> list[Event]:
        """Ask, then read the answer and whatever trails it. Up to its last event the read waits patiently
        (a loaded machine can pause the fake longer than the quiet period that ends the trailing read)."""
        await self.ask(text, **item)
        events = await self.read(until=_ends_answer, idle=2.0)
        if events and _ends_answer(events[-1]):
            events += await self.read()
        return events


def _ends_answer(envelope: Event) -> bool:
    return bool(envelope["event"]["type"] in ("response.done", "error"))


def types(events: list[Event]) -> list[str]:
    return [e["event"]["type"] for e in events]


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [e["event"] for e in events if e["event"]["type"] == kind]


def chunks(events: list[Event], key: str) -> list[Any]:
    return [c["chunk"][key] for c in of_type(events, "response.chunk") if key in c["chunk"]]


def text_by_channel(events: list[Event]) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in chunks(events, "text"):
        out[text["channel"]] = out.get(text["channel"], "") + text["text"]
    return out

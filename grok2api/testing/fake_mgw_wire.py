"""Writing mgw server events to the socket: the envelope, packed frames, pacing, and cutting the line.

Every server event goes out as ``{"session_id": S, "event": {"type": T, "event_id": "evt_<32 hex>_<n>", …}}``;
one text frame may carry several events back to back, with nothing between them, as grok.com sends them.
"""

from __future__ import annotations

import asyncio
from asyncio import Transport

from aiohttp import web

from .fake_http import JsonDict, encode_json
from .fake_mgw_script import Frame
from .fake_records import MgwRecord, shrink


class Sender:
    """The server side of one socket: numbers events, writes whole frames one at a time, records them."""

    def __init__(self, ws: web.WebSocketResponse, record: MgwRecord, prefix: str) -> None:
        self.ws = ws
        self.record = record
        self.prefix = prefix
        self.session_id = ""
        self._count = 0
        self._lock = asyncio.Lock()  # pongs interleave with a playing answer; frames must not

    def _stamp(self, event: JsonDict) -> JsonDict:
        self._count += 1
        body = {"type": event["type"], "event_id": f"evt_{self.prefix}_{self._count}"}
        body.update((k, v) for k, v in event.items() if k != "type")
        return {"session_id": self.session_id, "event": body}

    async def send(self, *events: JsonDict) -> None:
        async with self._lock:
            envelopes = [self._stamp(event) for event in events]
            await self.ws.send_str(b"".join(encode_json(e) for e in envelopes).decode())
            self.record.sent.extend(shrink(e) for e in envelopes)

    async def raw(self, text: str) -> None:
        async with self._lock:
            await self.ws.send_str(text)


def pack_pairs(frames: list[Frame]) -> list[Frame]:
    """Two consecutive event frames become one (``[[packed]]``, ``multi-json``)."""
    out: list[Frame] = []
    pending: Frame | None = None
    for frame in frames:
        if frame.kind != "events":
            pending = None
            out.append(frame)
        elif pending is None:
            pending = Frame("events", list(frame.events), token=frame.token)
            out.append(pending)
        else:
            pending.events.extend(frame.events)
            pending.token = pending.token or frame.token
            pending = None
    return out


async def play(sender: Sender, frames: list[Frame], transport: Transport | None, token_delay: float) -> None:
    """Send the frames in order; text frames after the first wait ``token_delay``. Stops if the client left."""
    seen_token = False
    try:
        for frame in frames:
            if frame.kind == "sleep":
                await asyncio.sleep(frame.seconds)
            elif frame.kind == "abort":
                if transport is not None:
                    transport.abort()
                return
            elif frame.kind == "end":
                await sender.ws.close(code=1000, message=b"session ended")
                return
            elif frame.kind == "raw":
                await sender.raw(frame.raw)
            else:
                if frame.token and seen_token and token_delay > 0:
                    await asyncio.sleep(token_delay)
                seen_token = seen_token or frame.token
                await sender.send(*frame.events)
    except ConnectionError:
        return

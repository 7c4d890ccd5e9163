"""One chat turn over grok.com's chat WebSocket (``/ws/mgw/?uid=<userId>``): open the socket with the
account's cookie, create a session, send the message, then read frames until the turn ends.

``stream_mgw`` yields the same ``list[Event]`` batches as ``GrokClient.stream_chat``. It raises
UpstreamHTTPError for a refused handshake and UpstreamConnectionError for connection trouble. An
in-band error, a failed ``response.done`` and an answer without text or images arrive as one final
``ErrorEvent`` (``failures.classify_event`` makes the last a server failure); a good turn ends with
``End``. The socket is closed when the turn ends or the consumer stops iterating (``aclose``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any
from urllib.parse import quote

from ..after_response import defer
from ..ids import uuid4_str
from ..settings import RuntimeSettings
from .errors import TurnNotAdmitted, UpstreamConnectionError
from .events import Event
from .headers import ws_headers
from .mgw_events import MgwParser
from .spare_sockets import SpareSockets
from .transport import WebSocket, WebSocketOpener, release, report_in_band_refusal, ws_url

PING_SECONDS = 25.0
BATCH_FRAMES = 64  # frames already received that one batch may take
SESSION_TIMEOUT = 20.0
_CLOSED = "grok.com closed the chat connection before the answer completed"


def mgw_url(upstream_url: str, user_id: str) -> str:
    """``https://grok.com`` → ``wss://grok.com/ws/mgw/?uid=<userId>`` (http → ws)."""
    return f"{ws_url(upstream_url.rstrip('/'))}/ws/mgw/?uid={quote(user_id, safe='')}"


def session_create(mode: str, settings: RuntimeSettings) -> dict[str, Any]:
    x_grok: dict[str, Any] = {
        "protocol_capabilities": ["conversation_attached", "custom_methods_v1"],
        "use_chunk": True,  # text as response.chunk, with channels that tell thinking from answer
        "enable_side_by_side": True,
        "force_side_by_side": False,
        "enable_image_generation": True,
        "image_generation_count": 2,
        "disable_text_follow_ups": False,
        "disable_artifact": True,
        "force_concise": False,
    }
    if settings.temporary:
        x_grok.update(keep_context=False, is_temporary=True, disable_memory=True)
    else:
        x_grok["is_temporary"] = False  # the chat stays in the account's history
    return {
        "event": {
            "type": "session.create",
            "event_id": f"evt_init_{uuid4_str()}",
            "session": {"model": mode, "x_grok": x_grok},
        }
    }


def turn_events(session_id: str, message: str, file_ids: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``conversation.item.create`` (files mentioned first, then the text) and ``response.create``."""
    chunks: list[dict[str, Any]] = [{"mention": {"target": {"file_mention": {"file_id": f}}}} for f in file_ids]
    chunks.append({"text": {"text": message}})
    item: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "x_grok": {"client_message_id": uuid4_str(), "input_chunks": chunks},
    }
    now = int(time.time() * 1000)
    event: dict[str, Any] = {"type": "conversation.item.create", "event_id": f"evt_msg_{now}", "item": item}
    if file_ids:
        item["file_attachment_ids"] = event["file_attachment_ids"] = list(file_ids)
    response = {"session_id": session_id, "event": {"type": "response.create", "event_id": f"evt_resp_{now}"}}
    return {"session_id": session_id, "event": event}, response


class _Heartbeat:
    """A ping every ``every`` seconds while the turn runs (grok.com drops a silent socket): a loop timer, with a
    task only while a ping is being sent. A dead socket stops it (the reader sees the close)."""

    def __init__(self, ws: WebSocket, every: float) -> None:
        self.ws = ws
        self.every = every
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(every, self._due)
        self.sending: asyncio.Task[None] | None = None
        self.stopped = False

    def _due(self) -> None:
        self.timer = None
        self.sending = self.loop.create_task(self._ping())

    async def _ping(self) -> None:
        try:
            await self.ws.send_json({"event": {"type": "ping", "event_id": f"evt_hb_{int(time.time() * 1000)}"}})
        except UpstreamConnectionError:
            return
        self.sending = None
        if not self.stopped:
            self.timer = self.loop.call_later(self.every, self._due)

    def stop(self) -> list[asyncio.Task[None]]:
        """Stop pinging; the ping being sent, if any (cancelled), for the caller to wait for."""
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        sending, self.sending = self.sending, None
        if sending is None or sending.done():
            return []
        sending.cancel()
        return [sending]


async def stream_mgw(
    transport: WebSocketOpener,
    token: str,
    user_id: str,
    mode: str,
    message: str,
    file_ids: Sequence[str],
    settings: RuntimeSettings,
    *,
    ping_seconds: float = PING_SECONDS,
    session_timeout: float = SESSION_TIMEOUT,
    admitted: Awaitable[bool] | None = None,
    on_sent: Callable[[], object] | None = None,
    spares: SpareSockets | None = None,
) -> AsyncGenerator[list[Event], None]:
    """One turn of ``mode`` for the account (``token``, ``user_id``); see the module docstring.
    ``admitted``, when given, is awaited once the session is open and before the message is sent: the
    socket and the session are set up while the account's query is being taken, and a False raises
    TurnNotAdmitted with nothing spent. ``on_sent`` is called once the socket's handshake request is on its
    way (the transport's ``websocket``): where taking the query starts, so it waits for grok.com's answer
    rather than holding up the request. With ``spares`` the turn takes the account's spare socket when one is
    waiting (``on_sent`` is then called at once), and an account that is chatting gets one for its next turn."""
    url = mgw_url(settings.upstream_url, user_id)
    headers = ws_headers(token, user_id, settings)
    keep_for = settings.spare_socket_seconds if spares is not None else 0.0
    key = (transport, url, token)
    ws = spares.take(key, settings) if spares is not None and keep_for else None
    spare = ws is not None
    refill: Callable[[], None] | None = None  # opens the account's next socket, once its answer is under way
    if spares is not None and keep_for > 0 and spares.turn_began(key, keep_for):
        refill = partial(spares.refill, key, settings, keep_for, lambda: transport.websocket(url, headers, ""))
    if ws is None:
        ws = await transport.websocket(url, headers, "", on_sent=on_sent)  # "": the egress's own proxy
    elif on_sent is not None:
        on_sent()
    heartbeat = _Heartbeat(ws, ping_seconds)
    parser = MgwParser()
    try:
        # The session opens within session_timeout (one timer for the whole opening); what its frames carry is
        # handed on, a batch per frame, once it is open or has failed.
        opening: list[list[Event]] = []
        try:
            async with asyncio.timeout(session_timeout):
                while True:
                    try:
                        await ws.send_json(session_create(mode, settings))
                        first = await _receive(ws)
                        break
                    except UpstreamConnectionError:
                        if not spare:
                            raise
                    # The spare was closed by grok.com while it waited: nothing was said on it, so a fresh socket
                    # takes the turn over.
                    assert spares is not None
                    spares.stale += 1
                    spare = False
                    await release(ws, *heartbeat.stop())
                    ws = await transport.websocket(url, headers, "")
                    heartbeat = _Heartbeat(ws, ping_seconds)
                frame: str | None = first
                while frame is not None:
                    batch = parser.feed(frame)
                    if batch:
                        opening.append(batch)
                    frame = None if parser.ready or parser.done else await _receive(ws)
        except TimeoutError:
            raise UpstreamConnectionError("grok.com did not open the chat session in time") from None
        if parser.failure is not None:
            await _report_refusal(transport, url, parser)
        for batch in opening:
            yield batch
        if not parser.done:
            if admitted is not None and not await admitted:
                raise TurnNotAdmitted
            item, response = turn_events(parser.session_id, message, file_ids)
            await ws.send_json(item, response)  # one write
        # The answer's own timeouts are the gateway's.
        while not parser.done:
            frame = await ws.receive_text()
            if frame is None:
                raise UpstreamConnectionError(_CLOSED)
            batch = parser.feed(frame)
            # Frames that have already arrived join this batch (up to BATCH_FRAMES): when the reader falls
            # behind, one batch (and one write to the client) carries them all instead of one each.
            taken = 1
            while taken < BATCH_FRAMES and not parser.done and ws.buffered():
                frame = await ws.receive_text()  # a frame that is there already (no wrapper coroutine per frame)
                if frame is None:
                    raise UpstreamConnectionError(_CLOSED)
                batch += parser.feed(frame)
                taken += 1
            if parser.failure is not None:
                await _report_refusal(transport, url, parser)
            if batch:
                yield batch
                if refill is not None and parser.failure is None:  # the first answer is on its way: the next
                    refill()  # turn's socket can open now, in the pause before grok.com's next frame
                    refill = None
    finally:
        if refill is not None and parser.done and parser.failure is None:  # an answer that came whole
            refill()
        # A finished turn's closing handshake (a round trip to grok.com) waits until the response is sent; an
        # abandoned one closes now, whatever cancels its caller.
        pinging = heartbeat.stop()
        if not (parser.done and defer(ws.close)):
            await release(ws, *pinging)


async def _report_refusal(transport: WebSocketOpener, url: str, parser: MgwParser) -> None:
    if parser.failure is not None and parser.failure.anti_bot:  # the egress's refusal, not the account's
        what = "an anti-bot error event on the chat WebSocket"
        await report_in_band_refusal(transport, "GET", url, what, parser.failure.message)


async def _receive(ws: WebSocket) -> str:
    frame = await ws.receive_text()
    if frame is None:
        raise UpstreamConnectionError(_CLOSED)
    return frame

"""The Imagine WebSocket: ``GET /ws/imagine/listen`` upgraded, one generation at a time.

The handshake wants the sso cookie of a usable account and an Origin of grok.com (or of the fake); refusals are
grok.com's HTTP answers (``imagine-401``, ``imagine-403-blocked``, ``imagine-403-antibot``, ``imagine-403-cf``,
``imagine-429``, ``imagine-5xx`` queued), kept for a plain GET of the same URL as for mgw. Then the client sends
``conversation.item.create`` with ``content: [{"type": "reset"}]`` and another with ``content: [{"type":
"input_text", "requestId": "img_…", "text", "properties": {…, "aspect_ratio", "enable_pro", "num_generations"}}]``
(``num_generations`` 4, 8 or 12). The answer, for every image: ``image`` frames at 30 and 60 % (previews, their
``blob`` plain base64), one at 100 % (the final picture: ``url`` and ``blob``), then its ``json`` frame
``current_status: "completed"`` with ``moderated``. Every picture is a real JPEG asset of the account.

Prompt markers: ``[[moderate…]]`` (``fake_imagine_images``), ``[[finals:url]]`` (finals without ``blob``),
``[[finals:data-url]]`` (``blob`` as a ``data:`` URL), ``[[fault:NAME]]`` for ``IMAGINE_STREAM_FAULTS``: ``error``
(an ``error`` frame after the previews), ``usage`` (a usage-limit ``error`` frame first), ``antibot`` (an
``anti_bot`` ``error`` frame first), ``close`` (the connection cut before any frame), ``stall-first:S``, and after the
previews ``stall-mid:S`` (S seconds of silence, default 30) or ``close-mid`` (the connection cut). Mistakes
in what the client sent come back as ``error`` frames. Each request takes one query of the account's
``image`` (or ``imagePro``) Imagine window; an empty window is a usage-limit ``error`` frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

from .fake_accounts import FakeAccount
from .fake_chat_request import parse_markers
from .fake_errors import ERR_ANTIBOT, ERR_BLOCKED, ERR_INVALID, USAGE_LIMIT_MESSAGE, refusal_response
from .fake_faults import IMAGINE_STREAM_FAULTS, MGW_HANDSHAKE_FAULTS, Fault, strip_prefix
from .fake_http import JsonDict, encode_json, json_response, own_origins, request_token, text_response
from .fake_imagine_images import IMAGE_B64, IMAGE_DATA_URL, FakeImage, make_image, moderated_positions
from .fake_imagine_windows import charge_imagine
from .fake_mgw_handshake import GROK_ORIGIN
from .fake_records import ImagineRecord, Refusal, shrink
from .fake_state import FakeState, state_of

IMAGINE_PATH = "/ws/imagine/listen"
MAX_FRAME = 16 * 1024 * 1024
GENERATIONS = (4, 8, 12)
ASPECT_RATIOS = frozenset({"1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "auto"})
PREVIEW_STEPS = (30, 60)
IMAGE_SIDE = 64  # the fake's pictures are 64×64 whatever the aspect ratio

routes = web.RouteTableDef()


@routes.get(IMAGINE_PATH)
async def handle_imagine(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME)
    if not ws.can_prepare(request).ok:
        kept = state.mgw_refusals.pop((request_token(request), IMAGINE_PATH), None)
        return kept.response() if kept is not None else text_response(426, "Upgrade Required\n")
    account = _admit(state, request)
    if isinstance(account, web.Response):
        return account
    record = state.record_imagine(request, account.token)
    return await state.hold_socket(request, ws, record, ImagineSession(state, request, ws, account, record).run)


def _check(state: FakeState, request: web.Request) -> FakeAccount | web.Response:
    account = state.identify(request_token(request))
    if account is None or account.state == "invalid":
        return json_response(401, ERR_INVALID)
    if account.state == "blocked":
        return json_response(403, ERR_BLOCKED)
    if request.headers.get("Origin") not in (GROK_ORIGIN, *own_origins(request)):
        return json_response(403, ERR_ANTIBOT)
    fault = state.take_fault("imagine", account.token, MGW_HANDSHAKE_FAULTS)
    return account if fault is None else refusal_response(fault)


def _admit(state: FakeState, request: web.Request) -> FakeAccount | web.Response:
    """The account of an acceptable handshake, else its refusal (kept for a plain GET, and recorded)."""
    checked = _check(state, request)
    if isinstance(checked, web.Response):
        token = request_token(request)
        state.mgw_refusals[(token, IMAGINE_PATH)] = Refusal.of(checked)
        state.record_imagine(request, token).refused = checked.status
    return checked


def _error(code: str, message: str) -> JsonDict:
    return {"type": "error", "code": code, "message": message}


class ImagineSession:
    """One connection: wait for the reset, then answer each request with its images."""

    def __init__(
        self,
        state: FakeState,
        request: web.Request,
        ws: web.WebSocketResponse,
        account: FakeAccount,
        record: ImagineRecord,
    ) -> None:
        self.state = state
        self.request = request
        self.ws = ws
        self.account = account
        self.record = record
        self.reset = False

    async def run(self) -> None:
        with contextlib.suppress(ConnectionError):  # the client may leave at any point
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    await self.on_message(message.data)

    async def send(self, frame: JsonDict) -> None:
        await self.ws.send_str(encode_json(frame).decode())
        self.record.sent.append(shrink(frame))

    async def on_message(self, text: str) -> None:
        try:
            message: Any = json.loads(text)
        except ValueError:
            await self.send(_error("invalid_argument", "Invalid JSON"))
            return
        self.record.received.append(shrink(message) if isinstance(message, dict) else {"raw": shrink(text)})
        item = message.get("item") if isinstance(message, dict) else None
        content = item.get("content") if isinstance(item, dict) else None
        if message.get("type") != "conversation.item.create" or not isinstance(content, list) or not content:
            await self.send(_error("invalid_argument", "Expected conversation.item.create with content"))
            return
        part = content[0] if isinstance(content[0], dict) else {}
        if part.get("type") == "reset":
            self.reset = True
        elif part.get("type") == "input_text":
            await self.on_request(part)
        else:
            await self.send(_error("invalid_argument", f"Unknown content type: {part.get('type')}"))

    async def on_request(self, part: JsonDict) -> None:
        self.record.request = shrink(part)
        problem = self._problem(part)
        if problem is not None:
            await self.send(_error("invalid_argument", problem))
            return
        text = str(part["text"])
        properties: JsonDict = part["properties"]
        markers = parse_markers(text, IMAGINE_STREAM_FAULTS)
        fault = self.state.take_fault("imagine", self.account.token, IMAGINE_STREAM_FAULTS) or markers.fault
        name = strip_prefix(fault.name) if fault is not None else None
        if await self._opening_fault(fault, name):
            return
        if not charge_imagine(self.account, "imagePro" if properties.get("enable_pro") else "image"):
            await self.send(_error("resource_exhausted", "You've reached your usage limit for Imagine images."))
            return
        count = int(properties["num_generations"])
        images = [make_image(self.state, self.account) for _ in range(count)]
        await self._play(part, images, moderated_positions(text, count), _finals_style(text), fault)

    def _problem(self, part: JsonDict) -> str | None:
        """What grok.com would refuse in the request, if anything."""
        if not self.reset:
            return "The conversation was not reset before the request"
        properties = part.get("properties")
        if not isinstance(part.get("text"), str) or not part["text"].strip():
            return "text is required"
        if not isinstance(part.get("requestId"), str) or not str(part["requestId"]).startswith("img_"):
            return "requestId is required"
        if not isinstance(properties, dict):
            return "properties are required"
        if properties.get("num_generations") not in GENERATIONS:
            return f"num_generations must be one of {GENERATIONS}"
        if properties.get("aspect_ratio") not in ASPECT_RATIOS:
            return f"Unsupported aspect_ratio: {properties.get('aspect_ratio')}"
        if not isinstance(properties.get("enable_pro"), bool):
            return "enable_pro must be a boolean"
        return None

    async def _opening_fault(self, fault: Fault | None, name: str | None) -> bool:
        """Faults that strike before any image; True when the request ends there."""
        if fault is not None and name == "stall-first":
            await asyncio.sleep(fault.seconds(1.0))
        if name == "close":
            if self.request.transport is not None:
                self.request.transport.abort()
            return True
        if name == "usage":
            await self.send(_error("resource_exhausted", USAGE_LIMIT_MESSAGE))
            return True
        if name == "antibot":
            await self.send(_error("anti_bot", "Request rejected by anti-bot rules."))
            return True
        return False

    async def _play(
        self, part: JsonDict, images: list[FakeImage], moderated: set[int], style: str, fault: Fault | None
    ) -> None:
        request_id = part["requestId"]
        name = strip_prefix(fault.name) if fault is not None else None
        for step in PREVIEW_STEPS:
            for index, image in enumerate(images):
                await self._pace()
                await self.send(_image_frame(request_id, index, image, step, image.preview_url, IMAGE_B64))
        if name == "error":
            await self.send(_error("internal", "Image generation failed"))
            return
        if fault is not None and name == "stall-mid":
            await asyncio.sleep(fault.seconds(30.0))
        if name == "close-mid":
            if self.request.transport is not None:
                self.request.transport.abort()
            return
        for index, image in enumerate(images):
            if index in moderated:
                verdict: JsonDict = {"url": "", "moderated": True}
            else:
                blob = {"url": None, "data-url": IMAGE_DATA_URL}.get(style, IMAGE_B64)
                await self._pace()
                await self.send(_image_frame(request_id, index, image, 100, image.url, blob))
                verdict = {"url": image.url, "moderated": False}
            await self._pace()
            await self.send(
                {
                    "type": "json",
                    "request_id": request_id,
                    "image_id": image.id,
                    "current_status": "completed",
                    "order": index,
                    "width": IMAGE_SIDE,
                    "height": IMAGE_SIDE,
                    **verdict,
                }
            )

    async def _pace(self) -> None:
        if self.state.token_delay > 0:
            await asyncio.sleep(self.state.token_delay)


def _finals_style(text: str) -> str:
    lowered = text.lower()
    for style in ("url", "data-url"):
        if f"[[finals:{style}]]" in lowered:
            return style
    return "blob"


def _image_frame(request_id: str, index: int, image: FakeImage, percent: int, url: str, blob: str | None) -> JsonDict:
    frame: JsonDict = {
        "type": "image",
        "request_id": request_id,
        "image_id": image.id,
        "job_id": image.id,
        "url": url,
        "percentage_complete": percent,
        "width": IMAGE_SIDE,
        "height": IMAGE_SIDE,
        "side_by_side_index": index,
        "order": index,
    }
    if blob is not None:
        frame["blob"] = blob
    return frame

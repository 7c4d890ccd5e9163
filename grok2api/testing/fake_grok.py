"""A fake grok.com: the private web API served by a real aiohttp server for tests and benchmarks.

Endpoints: E1 ``POST /rest/app-chat/conversations/new`` (streamed NDJSON or SSE), E2 ``POST
/rest/app-chat/upload-file``, E3 ``POST /rest/media/post/create``, E4 ``POST /rest/rate-limits`` and E5
``GET /assets/<path>``, plus control endpoints under ``/__fake/`` for a fake running in another process.

Scenarios are chosen by magic markers in the chat ``message``:

- ``[[think]]`` ``[[search]]`` ``[[cite]]`` ``[[artifact]]`` ``[[header]]``: thinking, web search, inline citation,
  artifact and step-header frames.
- ``[[draw]]`` (or "draw" / "画" when ``enableImageGeneration`` is not false), ``[[draw-moderated]]``: images.
- video (``toolOverrides.videoGen`` or ``mediaGenInput.textToVideo``), ``[[video-moderated]]``,
  ``[[video-in-attachments]]``.
- ``[[emoji]]`` ``[[list-token]]`` ``[[dict-token]]`` ``[[empty-token]]`` ``[[late-think]]`` ``[[unclosed-think]]``
  ``[[no-model]]``: content edge cases; ``[[tokens:N]]`` answers with exactly N tokens; ``[[sse]]`` SSE framing.
- ``[[fault:NAME]]`` / ``[[fault:NAME:PARAM]]``: one of ``CHAT_FAULTS``.

Faults queued with ``FakeGrok.push_fault`` win over a marker. A fault name's prefix picks its endpoint:
``upload-`` E2, ``post-`` E3, ``limits-`` E4, ``asset-`` E5, anything else E1.

Timing faults take seconds as their parameter: ``stall-first:S`` (before the first line, after the headers),
``stall-mid:S`` (after two answer tokens), ``slow-tokens:S`` (between tokens); S defaults to 1 s (0.1 s for
``slow-tokens``), so pass e.g. ``stall-first:35`` to trip a 30 s first-response timeout. ``trickle[:S]`` writes
the first 10 bytes of one line a byte at a time, S seconds apart (default 1 s, like a 1 byte/s link), then carries
on at full speed, so that a test need not wait for the whole stream. ``*-slow:S`` on the other endpoints
defaults to 35 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import fake_control, fake_limits, fake_media
from .fake_control import CONTROL_PREFIX
from .fake_edge import edge, statsig_valid
from .fake_errors import (
    ERR_ANTIBOT,
    ERR_BLOCKED,
    ERR_INVALID,
    ERR_RATE,
    ERR_TIER,
    USAGE_LIMIT_MESSAGE,
    cloudflare_response,
    server_error,
    too_many_requests,
)
from .fake_faults import CHAT_FAULTS, PRE_STREAM_FAULTS, Fault, fault_endpoint, split_fault
from .fake_http import (
    JsonDict,
    Reject,
    bad_request,
    encode_json,
    json_body,
    json_response,
    now_iso,
    parse_cookies,
)
from .fake_limits import LIMITS_PATH, rate_limits
from .fake_media import ASSETS_PREFIX, POST_PATH, TINY_JPEG, TINY_MP4, UPLOAD_PATH
from .fake_state import EXPERT_COST, IMAGE_COST, STATE_KEY, FakeAccount, FakeState, RecordedRequest

# What tests, the CLI and the benchmark import from here; everything else lives in its family's module.
__all__ = [
    "ASSETS_PREFIX",
    "CHAT_FAULTS",
    "CHAT_PATH",
    "CONTROL_PREFIX",
    "LIMITS_PATH",
    "MARKERS",
    "POST_PATH",
    "SEARCH_RESULTS",
    "TINY_JPEG",
    "TINY_MP4",
    "UPLOAD_PATH",
    "FakeAccount",
    "FakeGrok",
    "RecordedRequest",
    "fault_endpoint",
    "main",
    "parse_cookies",
    "rate_limits",
    "serve_forever",
    "statsig_valid",
]

CHAT_PATH = "/rest/app-chat/conversations/new"

MARKERS = frozenset(
    (
        "think search cite artifact header draw draw-moderated video-moderated video-in-attachments emoji "
        "list-token dict-token empty-token late-think unclosed-think no-model sse"
    ).split()
)
_MARKER_RE = re.compile(r"\[\[([^\[\]\n]{1,80})\]\]")
_DRAW_RE = re.compile(r"\bdraw|画", re.IGNORECASE)
_POST_ID_RE = re.compile(r"grok\.com/imagine/([0-9A-Za-z-]{6,})")
_WORD_RE = re.compile(r"\S+\s*|\s+")


# --------------------------------------------------------------------------------------------------- chat request


@dataclass
class _Markers:
    flags: set[str] = field(default_factory=set)
    fault: Fault | None = None
    token_count: int | None = None

    def has(self, flag: str) -> bool:
        return flag in self.flags


def _parse_markers(message: str) -> _Markers:
    markers = _Markers()
    for raw in _MARKER_RE.findall(message):
        text = raw.strip()
        lowered = text.lower()
        if lowered.startswith("fault:") and markers.fault is None:
            name, param = split_fault(text[len("fault:") :])
            if name in CHAT_FAULTS:
                markers.fault = Fault(name, param)
        elif lowered.startswith("tokens:"):
            with contextlib.suppress(ValueError):
                markers.token_count = max(0, int(lowered[len("tokens:") :]))
        elif lowered in MARKERS:
            markers.flags.add(lowered)
    return markers


@dataclass
class _Chat:
    """The parts of an E1 body that steer the fake."""

    message: str
    model: str | None
    mode: str
    temporary: bool
    image_count: int
    attachments: list[str]
    markers: _Markers
    video: bool
    draw: bool

    @property
    def heavy(self) -> bool:
        return self.mode in ("MODEL_MODE_HEAVY", "heavy") or self.model == "grok-4-heavy"

    @property
    def cost(self) -> int:
        base = EXPERT_COST if self.mode in ("MODEL_MODE_EXPERT", "expert") else 1
        return base + (IMAGE_COST if self.draw else 0)

    @property
    def prompt(self) -> str:
        """The message without magic markers, which the default answer echoes."""
        return " ".join(_MARKER_RE.sub(" ", self.message).split())

    @property
    def post_id(self) -> str | None:
        match = _POST_ID_RE.search(self.message)
        return match.group(1) if match else None


def _is_video(body: JsonDict) -> bool:
    overrides = body.get("toolOverrides")
    media = body.get("mediaGenInput")
    return (isinstance(overrides, dict) and overrides.get("videoGen") is True) or (
        isinstance(media, dict) and isinstance(media.get("textToVideo"), dict)
    )


def _parse_chat(body: JsonDict, account: FakeAccount) -> _Chat:
    message = body.get("message")
    if not isinstance(message, str):
        raise bad_request("message must be a string")
    video = _is_video(body)
    model_name, model_mode, mode_id = body.get("modelName"), body.get("modelMode"), body.get("modeId")
    # 2025 bodies name a model and a mode, 2026 bodies a modeId; video/imagine bodies carry only a model.
    if not (isinstance(mode_id, str) or (isinstance(model_name, str) and (isinstance(model_mode, str) or video))):
        raise bad_request("modelName and modelMode (or modeId) are required")
    attachments = _attachments(body, account)
    markers = _parse_markers(message)
    count = body.get("imageGenerationCount", 2)
    wants_images = body.get("enableImageGeneration") is not False
    draw = not video and (
        markers.has("draw") or markers.has("draw-moderated") or (wants_images and bool(_DRAW_RE.search(message)))
    )
    return _Chat(
        message=message,
        model=model_name if isinstance(model_name, str) else (mode_id if isinstance(mode_id, str) else None),
        mode=model_mode if isinstance(model_mode, str) else (mode_id if isinstance(mode_id, str) else ""),
        temporary=body.get("temporary") is True,
        image_count=min(max(count, 1), 10) if isinstance(count, int) else 2,
        attachments=attachments,
        markers=markers,
        video=video,
        draw=draw,
    )


def _attachments(body: JsonDict, account: FakeAccount) -> list[str]:
    raw = body.get("fileAttachments", [])
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise bad_request("fileAttachments must be a list of file ids")
    for file_id in raw:
        if file_id not in account.uploads:
            raise bad_request(f"File {file_id} not found")
    return list(raw)


def _answer_tokens(chat: _Chat) -> list[str]:
    if chat.markers.token_count is not None:
        return [f"tok{i} " for i in range(chat.markers.token_count)]
    return _wordish(f"Hello! You said: {chat.prompt[-40:]}")


def _wordish(text: str) -> list[str]:
    """Tokens of about four characters that follow word boundaries: whole short words, long words in pieces."""
    tokens: list[str] = []
    for word in _WORD_RE.findall(text):
        if len(word.rstrip()) <= 6:
            tokens.append(word)
        else:
            tokens.extend(word[i : i + 4] for i in range(0, len(word), 4))
    return tokens


# --------------------------------------------------------------------------------------------------- scripts

EMOJI_TOKENS = ["Family ", "👨\u200d", "👩\u200d👧", " flag ", "🇯", "🇵", " 漢", "字 ", "cafe", "\u0301 "]
THINK_TOKENS = ["Let me ", "think ", "about ", "this."]
ARTIFACT_TOKEN = ' Code: <xaiArtifact contentType="text/python">print(1)</xaiArtifact>'
CITE_CARD_ID = "k9"
CITE_TOKEN = (
    f'<grok:render card_id="{CITE_CARD_ID}" card_type="citation_card" type="render_inline_citation">'
    '<argument name="citation_id">0</argument></grok:render>'
)
SEARCH_RESULTS = [
    {
        "url": "https://example.com/fake-grok/first",
        "title": "First result",
        "preview": "A preview that spans\ntwo lines.",
    },
    {"url": "https://example.org/fake-grok/second", "title": "Second result", "preview": "Another preview."},
]
TOOL_CARD_ID = "t1"
VIDEO_STEPS = (1, 5, 25, 50, 75, 95)
VIDEO_CLOSING = "I generated a video"


@dataclass(slots=True)
class _Step:
    kind: str  # obj: JSON frame; line: raw text framed like a line; verbatim: bytes as they are; sleep; abort; trickle
    obj: Any = None
    raw: bytes = b""
    seconds: float = 0.0
    token: bool = False


class _Script:
    """The lines of one E1 answer, built in order, keeping ``modelResponse.message`` equal to the final tokens."""

    def __init__(self, chat: _Chat, fault: Fault | None, ids: Callable[[], str]) -> None:
        self.chat = chat
        self.fault = fault
        self.steps: list[_Step] = []
        self.final: list[str] = []
        self.ended = False
        self.conversation_id = ids()
        self.user_response_id = ids()
        self.response_id = ids()
        self._final_count = 0
        self._mid_done = False

    @property
    def fault_name(self) -> str | None:
        return self.fault.name if self.fault else None

    def add(self, step: _Step) -> None:
        if not self.ended:
            self.steps.append(step)

    def line(self, obj: JsonDict, *, token: bool = False) -> None:
        self.add(_Step("obj", obj=obj, token=token))

    def frame(self, response: JsonDict, *, token: bool = False) -> None:
        self.line({"result": {"response": response}}, token=token)

    def token_response(self, value: Any, thinking: bool = False, tag: str = "final", **extra: Any) -> JsonDict:
        return {
            "token": value,
            "isThinking": thinking,
            "isSoftStop": False,
            "responseId": self.response_id,
            "messageTag": tag,
            **extra,
        }

    def token(self, value: Any, *, thinking: bool = False, tag: str = "final", **extra: Any) -> None:
        if self.ended:
            return
        self.frame(self.token_response(value, thinking, tag, **extra), token=True)
        if tag == "final" and not thinking and isinstance(value, str):
            self.final.append(value)
            self._final_count += 1
            if self._final_count == 2:
                self.mid_stream()

    def thinking(self, text: str, tag: str = "assistant") -> None:
        self.token(text, thinking=True, tag=tag, messageStepId=0)

    def mid_stream(self) -> None:
        """Everything that happens 'after a few answer tokens': late thinking and in-stream faults."""
        if self._mid_done:
            return
        self._mid_done = True
        if self.chat.markers.has("late-think"):
            self.thinking("Wait, ")
            self.thinking("one more thought.")
        if self.fault is not None:
            _inject_mid_fault(self, self.fault)


def _inject_mid_fault(script: _Script, fault: Fault) -> None:
    name = fault.name
    if name == "inband-8":
        script.line(ERR_RATE)
    elif name == "inband-13":
        script.line({"error": {"code": 13, "message": "Internal error", "details": []}})
    elif name == "inband-usage":
        script.frame({"error": {"message": USAGE_LIMIT_MESSAGE}, "responseId": script.response_id})
    elif name == "reset":
        script.add(_Step("abort"))
    elif name == "malformed":
        script.add(_Step("line", raw=b'{"result":{"response":{"token":"broken'))
    elif name == "blank":
        script.add(_Step("verbatim", raw=b"\n\n \r\n"))
    elif name == "stall-mid":
        script.add(_Step("sleep", seconds=fault.seconds(1.0)))
    elif name == "trickle":
        script.add(_Step("trickle", seconds=fault.seconds(1.0)))
    elif name == "long-line":
        script.token("x" * (1 << 20))
    elif name == "multi-json":
        _two_tokens_one_line(script)
    if name in ("inband-8", "inband-13", "inband-usage", "reset"):
        script.ended = True


def _two_tokens_one_line(script: _Script) -> None:
    parts = [" two", " on one line"]
    frames = [encode_json({"result": {"response": script.token_response(part)}}) for part in parts]
    script.add(_Step("line", raw=b"".join(frames), token=True))
    script.final.extend(parts)


def _conversation_line(script: _Script) -> JsonDict:
    now = now_iso()
    return {
        "result": {
            "conversation": {
                "conversationId": script.conversation_id,
                "title": "New conversation",
                "starred": False,
                "createTime": now,
                "modifyTime": now,
                "systemPromptName": "",
                "temporary": script.chat.temporary,
                "mediaTypes": [],
            }
        }
    }


def _message_fields() -> JsonDict:
    """The bulk of fields a userResponse/modelResponse carries and nobody reads."""
    return {
        "createTime": now_iso(),
        "manual": False,
        "partial": False,
        "shared": False,
        "query": "",
        "queryType": "",
        "webSearchResults": [],
        "xpostIds": [],
        "xposts": [],
        "generatedImageUrls": [],
        "imageAttachments": [],
        "fileAttachments": [],
        "cardAttachmentsJson": [],
        "fileUris": [],
        "fileAttachmentsMetadata": [],
        "isControl": False,
        "steps": [],
        "mediaTypes": [],
    }


def _user_response(script: _Script) -> JsonDict:
    chat = script.chat
    user: JsonDict = {"responseId": script.user_response_id, "message": chat.message, "sender": "human"}
    user.update(_message_fields())
    user["fileAttachments"] = chat.attachments
    if chat.model is not None and not chat.markers.has("no-model"):
        user["model"] = chat.model
    rid = script.user_response_id
    return {"userResponse": user, "isThinking": False, "isSoftStop": False, "responseId": rid}


def _model_response(script: _Script, **fields: Any) -> JsonDict:
    chat = script.chat
    model: JsonDict = {
        "responseId": script.response_id,
        "message": "".join(script.final),
        "sender": "ASSISTANT",
        "parentResponseId": script.user_response_id,
    }
    model.update(_message_fields())
    model.update(fields)
    model["metadata"] = {"llm_info": {"modelHash": "fake-grok-1"}}
    if chat.model is not None and not chat.markers.has("no-model"):
        model["model"] = chat.model
    if script.fault_name == "model-error":
        model["error"] = "The model encountered an error while generating a response."
    elif script.fault_name == "stream-errors":
        model["streamErrors"] = [{"code": 13, "message": "Upstream stream interrupted"}]
    return {"modelResponse": model, "isThinking": False, "isSoftStop": False, "responseId": script.response_id}


def _finish(script: _Script, **model_fields: Any) -> None:
    """modelResponse, finalMetadata and the title line, unless a fault ended the stream first."""
    script.mid_stream()
    if script.fault_name == "no-model-response":
        return
    script.frame(_model_response(script, **model_fields))
    script.frame(
        {
            "finalMetadata": {"followUpSuggestions": [], "feedbackLabels": [], "toolsUsed": {}},
            "isThinking": False,
            "isSoftStop": True,
            "responseId": script.response_id,
        }
    )
    if not script.chat.temporary:
        title = " ".join(script.chat.prompt.split()[:5]) or "New conversation"
        script.line({"result": {"title": {"newTitle": title}}})


def _thinking_phase(script: _Script) -> None:
    markers = script.chat.markers
    think = markers.has("think") or markers.has("unclosed-think")
    if think:
        script.thinking("Thinking about your request", tag="header")
    if markers.has("search"):
        _search_frames(script)
    if think:
        for text in THINK_TOKENS:
            script.thinking(text)


def _search_frames(script: _Script) -> None:
    query = script.chat.prompt[-60:] or "fake grok"
    args = encode_json({"query": query}).decode()
    card = (
        f"<xai:tool_usage_card><xai:tool_usage_card_id>{TOOL_CARD_ID}</xai:tool_usage_card_id>"
        f"<xai:tool_name>web_search</xai:tool_name><xai:tool_args><![CDATA[{args}]]></xai:tool_args>"
        "</xai:tool_usage_card>"
    )
    structured = {"toolUsageCardId": TOOL_CARD_ID, "webSearch": {"args": {"query": query}}}
    script.token(card, thinking=True, tag="tool_usage_card", toolUsageCardId=TOOL_CARD_ID, toolUsageCard=structured)
    script.frame(
        {
            "isThinking": True,
            "toolUsageCardId": TOOL_CARD_ID,
            "webSearchResults": {"results": SEARCH_RESULTS},
            "responseId": script.response_id,
            "messageTag": "tool_usage_card",
        }
    )


def _answer_phase(script: _Script) -> JsonDict:
    """Final answer tokens with the requested oddities; returns extra modelResponse fields."""
    markers = script.chat.markers
    tokens = _answer_tokens(script.chat)
    fields: JsonDict = {}
    if markers.has("header"):
        script.token("Answering", tag="header")
    for index, text in enumerate(tokens):
        script.token(text)
        if index == 0:
            _after_first_token(script, fields)
    if markers.has("artifact"):
        script.token(ARTIFACT_TOKEN)
    if markers.has("emoji"):
        for text in EMOJI_TOKENS:
            script.token(text)
    if markers.has("search"):
        fields["webSearchResults"] = SEARCH_RESULTS
    return fields


def _after_first_token(script: _Script, fields: JsonDict) -> None:
    markers = script.chat.markers
    if markers.has("cite"):
        card = encode_json(
            {
                "id": CITE_CARD_ID,
                "type": "render_inline_citation",
                "cardType": "citation_card",
                "url": SEARCH_RESULTS[0]["url"],
            }
        ).decode()
        script.frame({"cardAttachment": {"jsonData": card}, "messageTag": "final", "responseId": script.response_id})
        script.token(CITE_TOKEN)
        fields["cardAttachmentsJson"] = [card]
    if markers.has("list-token"):
        script.token(["a", "list", "token"])
    if markers.has("dict-token"):
        script.token({"text": "a dict token", "kind": "deepsearch"})
    if markers.has("empty-token"):
        script.token("")


# --------------------------------------------------------------------------------------------------- server

# Every endpoint family is a module with its route table; serving a new family is one more entry here.
FAMILIES: tuple[web.RouteTableDef, ...] = (fake_media.routes, fake_limits.routes, fake_control.routes)


class FakeGrok(FakeState):
    """A fake grok.com on a real socket. ``start()`` it, point the gateway at ``base_url``/``assets_url``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_delay: float = 0.0,
        first_line_delay: float = 0.0,
        accept_unknown: bool = True,
        seed: int = 1,
        framing: str = "ndjson",
    ) -> None:
        super().__init__(
            token_delay=token_delay,
            first_line_delay=first_line_delay,
            accept_unknown=accept_unknown,
            seed=seed,
            framing=framing,
        )
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}" if port else ""
        self.assets_url = f"{self.base_url}/assets" if port else ""
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        # Cancel handlers when the client goes away, so stalled streams do not hold stop() up.
        runner = web.AppRunner(
            self._build_app(), handle_signals=False, access_log=None, shutdown_timeout=1.0, handler_cancellation=True
        )
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.base_url = f"http://{self.host}:{self.port}"
        self.assets_url = f"{self.base_url}/assets"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeGrok:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[edge], client_max_size=64 * 1024 * 1024)
        app[STATE_KEY] = self
        app.router.add_post(CHAT_PATH, self._handle_chat)
        for family in FAMILIES:
            app.add_routes(family)
        return app

    def chat_calls(self, token: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == CHAT_PATH and (token is None or r.token == token)]

    # ---------------------------------------------------------------- E1 chat

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        account = self.resolve(request)
        chat = _parse_chat(json_body(request), account)
        fault = self.take_fault("chat", account.token) or chat.markers.fault
        if fault is not None and fault.name in PRE_STREAM_FAULTS:
            return self._pre_stream_fault(fault)
        self._admit_chat(account, chat)
        script = self._build_script(account, chat, fault)
        framing = "sse" if chat.markers.has("sse") else self.framing
        delay = fault.seconds(0.1) if fault is not None and fault.name == "slow-tokens" else self.token_delay
        first = self.first_line_delay + (fault.seconds(1.0) if fault is not None and fault.name == "stall-first" else 0)
        account.in_flight += 1
        try:
            return await self._play(request, script, framing, delay, first)
        finally:
            account.in_flight -= 1

    @staticmethod
    def _pre_stream_fault(fault: Fault) -> web.Response:
        name = fault.name
        if name == "401":
            return json_response(401, ERR_INVALID)
        if name == "403-blocked":
            return json_response(403, ERR_BLOCKED)
        if name == "403-antibot":
            return json_response(403, ERR_ANTIBOT)
        if name == "403-cf":
            return cloudflare_response()
        if name == "429":
            return too_many_requests(fault.value())
        if name == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        return server_error(int(name), fault.style())

    def _admit_chat(self, account: FakeAccount, chat: _Chat) -> None:
        """Tier gating, the concurrency cap and quota, in that order; quota is charged only when admitted."""
        if chat.heavy and account.tier == "basic":
            raise Reject(json_response(403, ERR_TIER))
        cap = self.max_concurrency_per_account
        if cap > 0 and account.in_flight >= cap:
            raise Reject(json_response(429, ERR_RATE))
        retry = {"Retry-After": str(account.seconds_left())}
        if chat.heavy:
            if account.heavy_remaining < 1:
                raise Reject(json_response(429, ERR_RATE, retry))
            account.heavy_remaining -= 1
            return
        if account.remaining < chat.cost:
            raise Reject(json_response(429, ERR_RATE, retry))
        account.remaining -= chat.cost

    def _build_script(self, account: FakeAccount, chat: _Chat, fault: Fault | None) -> _Script:
        script = _Script(chat, fault, self.new_id)
        script.line(_conversation_line(script))
        script.frame(_user_response(script))
        if chat.video:
            self._video_phase(script, account)
            return script
        _thinking_phase(script)
        if chat.markers.has("unclosed-think"):
            script.mid_stream()
            return script
        if chat.draw:
            _finish(script, generatedImageUrls=self._draw_phase(script, account))
        else:
            _finish(script, **_answer_phase(script))
        return script

    def _draw_phase(self, script: _Script, account: FakeAccount) -> list[str]:
        """Trace C: a short token, imageAttachmentInfo, progress frames per image, then the final urls."""
        chat = script.chat
        image_ids = [self.new_id() for _ in range(chat.image_count)]
        moderated = chat.image_count - 1 if chat.markers.has("draw-moderated") else -1
        base = f"users/{account.user_id}/generated"
        script.token("Generating images…")
        script.frame(
            {"imageAttachmentInfo": {"imageUuids": image_ids}, "isThinking": False, "responseId": script.response_id}
        )
        for progress in (0, 50, 100):
            for index, image_id in enumerate(image_ids):
                frame: JsonDict = {
                    "imageId": image_id,
                    "imageIndex": index,
                    "progress": progress,
                    "moderated": index == moderated,
                    "isFinal": progress == 100,
                }
                if index != moderated and progress:
                    part = "" if progress == 100 else "-part-0"
                    frame["imageUrl"] = f"{base}/{image_id}{part}/image.jpg"
                    self.register_asset(frame["imageUrl"], account.token)
                script.frame(
                    {"streamingImageGenerationResponse": frame, "isThinking": False, "responseId": script.response_id}
                )
        return [f"{base}/{image_id}/image.jpg" for i, image_id in enumerate(image_ids) if i != moderated]

    def _video_phase(self, script: _Script, account: FakeAccount) -> None:
        """Trace D: progress 1..95, then 100 with the url (or moderated, or the url in fileAttachments)."""
        markers = script.chat.markers
        video_id = self.new_id()
        post_id = script.chat.post_id or video_id
        base = {"videoId": video_id, "videoPostId": post_id}
        for progress in VIDEO_STEPS:
            script.frame({"streamingVideoGenerationResponse": {**base, "progress": progress}})
        url = f"users/{account.user_id}/generated/{video_id}/generated_video.mp4"
        thumb = f"users/{account.user_id}/generated/{video_id}/preview_image.jpg"
        done: JsonDict = {**base, "progress": 100, "assetId": video_id, "moderated": False}
        if markers.has("video-moderated"):
            done["moderated"] = True
        else:
            self.register_asset(url, account.token)
            self.register_asset(thumb, account.token)
            if not markers.has("video-in-attachments"):
                done.update(videoUrl=url, thumbnailImageUrl=thumb)
        script.frame({"streamingVideoGenerationResponse": done})
        script.mid_stream()
        if markers.has("video-in-attachments") and script.fault_name != "no-model-response":
            # The closing token below carries the text, so the message anticipates it.
            script.frame(_model_response(script, fileAttachments=[url], message=VIDEO_CLOSING))
        script.token(VIDEO_CLOSING, isSoftStop=True)

    async def _play(
        self, request: web.Request, script: _Script, framing: str, token_delay: float, first_delay: float
    ) -> web.StreamResponse:
        """Send the script: headers at once, then one write per line (each write reaches the socket)."""
        ctype = "text/event-stream" if framing == "sse" else "application/json"
        response = web.StreamResponse(status=200, headers={"Content-Type": ctype, "Cache-Control": "no-store"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if first_delay > 0:
            await asyncio.sleep(first_delay)
        with contextlib.suppress(ConnectionError):
            if not await self._play_steps(request, response, script.steps, framing, token_delay):
                return response
            if framing == "sse":
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        return response

    @staticmethod
    async def _play_steps(
        request: web.Request, response: web.StreamResponse, steps: list[_Step], framing: str, token_delay: float
    ) -> bool:
        """Write the steps; False when the connection was deliberately cut."""
        trickle = 0.0
        seen_token = False
        for step in steps:
            if step.kind == "sleep":
                await asyncio.sleep(step.seconds)
                continue
            if step.kind == "trickle":
                trickle = step.seconds
                continue
            if step.kind == "abort":
                if request.transport is not None:
                    request.transport.abort()
                return False
            if step.token:
                if seen_token and token_delay > 0:
                    await asyncio.sleep(token_delay)
                seen_token = True
            data = _encode_step(step, framing)
            if trickle > 0:
                await _trickle(response, data, trickle)
                trickle = 0.0
            else:
                await response.write(data)
        return True


def _encode_step(step: _Step, framing: str) -> bytes:
    if step.kind == "verbatim":
        return step.raw
    payload = encode_json(step.obj) if step.kind == "obj" else step.raw
    return b"data: " + payload + b"\n\n" if framing == "sse" else payload + b"\n"


async def _trickle(response: web.StreamResponse, data: bytes, per_byte: float, limit: int = 10) -> None:
    for index in range(min(limit, len(data))):
        await response.write(data[index : index + 1])
        await asyncio.sleep(per_byte)
    if len(data) > limit:
        await response.write(data[limit:])


# --------------------------------------------------------------------------------------------------- CLI

_ATTRIBUTE_OPTIONS = ("require_cf_clearance", "strict_statsig", "max_concurrency_per_account")


async def serve_forever(host: str, port: int, **kwargs: Any) -> None:
    """Run a fake until cancelled. ``kwargs`` are constructor arguments or settable attributes."""
    attributes = {key: kwargs.pop(key) for key in _ATTRIBUTE_OPTIONS if key in kwargs}
    fake = FakeGrok(host=host, port=port, **kwargs)
    for key, value in attributes.items():
        setattr(fake, key, value)
    url = await fake.start()
    print(f"fake grok.com listening on {url} (assets {fake.assets_url})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grok2api.testing.fake_grok", description="Run a fake grok.com")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between answer tokens")
    parser.add_argument("--first-line-delay", type=float, default=0.0, help="seconds before the first line")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--framing", choices=("ndjson", "sse"), default="ndjson")
    parser.add_argument("--reject-unknown", action="store_true", help="401 for tokens not added via /__fake/accounts")
    parser.add_argument("--require-cf-clearance", default=None, metavar="VALUE")
    parser.add_argument("--strict-statsig", action="store_true")
    parser.add_argument("--max-concurrency", type=int, default=0, help="per-account stream cap (0 = off)")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "token_delay": args.token_delay,
        "first_line_delay": args.first_line_delay,
        "seed": args.seed,
        "framing": args.framing,
        "accept_unknown": not args.reject_unknown,
        "require_cf_clearance": args.require_cf_clearance,
        "strict_statsig": args.strict_statsig,
        "max_concurrency_per_account": args.max_concurrency,
    }
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(args.host, args.port, **options))


if __name__ == "__main__":
    main()

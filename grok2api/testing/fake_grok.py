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
import base64
import binascii
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from .fake_errors import (
    ERR_ANTIBOT,
    ERR_BLOCKED,
    ERR_INVALID,
    ERR_RATE,
    ERR_TIER,
    USAGE_LIMIT_MESSAGE,
    cloudflare_response,
    server_error,
    status_fault,
    too_many_requests,
)
from .fake_faults import CHAT_FAULTS, PRE_STREAM_FAULTS, Fault, split_fault
from .fake_http import (
    Handler,
    JsonDict,
    Reject,
    bad_request,
    decode_json,
    encode_json,
    error_response,
    json_body,
    json_response,
    now_iso,
    parse_cookies,
    sso_token,
    text_response,
)
from .fake_state import EXPERT_COST, IMAGE_COST, FakeAccount, FakeState, RecordedRequest

__all__ = [
    "CHAT_FAULTS",
    "MARKERS",
    "FakeAccount",
    "FakeGrok",
    "RecordedRequest",
    "main",
    "serve_forever",
]

CHAT_PATH = "/rest/app-chat/conversations/new"
UPLOAD_PATH = "/rest/app-chat/upload-file"
POST_PATH = "/rest/media/post/create"
LIMITS_PATH = "/rest/rate-limits"
ASSETS_PREFIX = "/assets/"
# A second spelling of every asset path, the target of the ``asset-redirect`` fault.
ALIAS_SEGMENT = "_alias/"
CONTROL_PREFIX = "/__fake/"

MARKERS = frozenset(
    (
        "think search cite artifact header draw draw-moderated video-moderated video-in-attachments emoji "
        "list-token dict-token empty-token late-think unclosed-think no-model sse"
    ).split()
)
# Model names whose E4 answer is a shared token budget (2025 shape); others get flat query counts.
TOKEN_BUDGET_MODELS = frozenset({"grok-3", "grok-4-mini-thinking-tahoe", "grok-4"})
HEAVY_LIMIT_NAMES = frozenset({"grok-4-heavy", "heavy"})

# A 16x16 greyscale baseline JPEG (four flat 8x8 blocks); decodes with any JPEG decoder.
TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080101010101010101010101010101010101010101010101010101"
    "0101010101010101010101010101010101010101010101010101010101010101010101ffc0000b080010001001011100ffc40031"
    "0000010501010101010100000000000000000102030405060708090a0b100100000000000000000000000000000000ffda000801"
    "0100003f00f3f7b03a878bbfffd9"
)


# A real one-second 32x32 H.264 clip (ISO-BMFF: ftyp, moov with one video track, mdat), made for these
# tests with an encoder; players and browsers play it.
TINY_MP4 = bytes.fromhex(
    "000000206674797069736f6d0000020069736f6d69736f32617663316d703431000003366d6f6f760000006c6d766864000000000000"
    "000000000000000003e8000003e800010000010000000000000000000000000100000000000000000000000000000001000000000000"
    "00000000000000004000000000000000000000000000000000000000000000000000000000000002000002607472616b0000005c746b"
    "68640000000300000000000000000000000100000000000003e800000000000000000000000000000000000100000000000000000000"
    "000000000001000000000000000000000000000040000000002000000020000000000024656474730000001c656c7374000000000000"
    "0001000003e80000000000010000000001d86d646961000000206d646864000000000000000000000000000040000000400055c40000"
    "0000002d68646c72000000000000000076696465000000000000000000000000566964656f48616e646c657200000001836d696e6600"
    "000014766d68640000000100000000000000000000002464696e660000001c6472656600000000000000010000000c75726c20000000"
    "01000001437374626c000000bb737473640000000000000001000000ab61766331000000000000000100000000000000000000000000"
    "000000002000200048000000480000000000000001154c61766335392e33372e313030206c6962783236340000000000000000000000"
    "18ffff00000031617663430142c00affe100186742c00aa61125b011000003000100000300080f1226118001000668c8420392c80000"
    "001070617370000000010000000100000014627472740000000000001570000015700000001873747473000000000000000100000004"
    "0000100000000014737473730000000000000001000000010000001c7374736300000000000000010000000100000004000000010000"
    "00247374737a000000000000000000000004000002900000000a0000000a0000000a000000147374636f000000000000000100000366"
    "00000062756474610000005a6d657461000000000000002168646c7200000000000000006d6469726170706c00000000000000000000"
    "00002d696c737400000025a9746f6f0000001d6461746100000001000000004c61766635392e32372e31303000000008667265650000"
    "02b66d646174000002720605ffff6edc45e9bde6d948b7962cd820d923eeef78323634202d20636f7265203136342072333039352062"
    "616565343030202d20482e3236342f4d5045472d342041564320636f646563202d20436f70796c65667420323030332d32303232202d"
    "20687474703a2f2f7777772e766964656f6c616e2e6f72672f783236342e68746d6c202d206f7074696f6e733a2063616261633d3020"
    "7265663d3136206465626c6f636b3d313a303a3020616e616c7973653d3078313a3078313331206d653d756d68207375626d653d3130"
    "207073793d31207073795f72643d312e30303a302e3030206d697865645f7265663d31206d655f72616e67653d3234206368726f6d61"
    "5f6d653d31207472656c6c69733d32203878386463743d302063716d3d3020646561647a6f6e653d32312c313120666173745f70736b"
    "69703d31206368726f6d615f71705f6f66667365743d2d3220746872656164733d31206c6f6f6b61686561645f746872656164733d31"
    "20736c696365645f746872656164733d30206e723d3020646563696d6174653d3120696e7465726c616365643d3020626c757261795f"
    "636f6d7061743d3020636f6e73747261696e65645f696e7472613d3020626672616d65733d3020776569676874703d30206b6579696e"
    "743d323530206b6579696e745f6d696e3d34207363656e656375743d343020696e7472615f726566726573683d302072635f6c6f6f6b"
    "61686561643d36302072633d637266206d62747265653d31206372663d34302e302071636f6d703d302e36302071706d696e3d302071"
    "706d61783d3639207170737465703d342069705f726174696f3d312e34302061713d313a312e3030008000000016658882025e231400"
    "0413e3800082f470001029bebaf000000006419a1c04bcb000000006419a2a011f2c00000006419a3b010f2c"
)

_MARKER_RE = re.compile(r"\[\[([^\[\]\n]{1,80})\]\]")
_DRAW_RE = re.compile(r"\bdraw|画", re.IGNORECASE)
_POST_ID_RE = re.compile(r"grok\.com/imagine/([0-9A-Za-z-]{6,})")
_WORD_RE = re.compile(r"\S+\s*|\s+")


def statsig_valid(value: str, prefixes: tuple[str, ...] = ("e:", "x1:")) -> bool:
    """True when the header is base64 of ASCII text starting with one of the accepted prefixes."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return False
    return any(decoded.startswith(p) and len(decoded) > len(p) for p in prefixes)


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

# Attributes that ``POST /__fake/config`` may change.
_CONFIG_KEYS = (
    "token_delay",
    "first_line_delay",
    "accept_unknown",
    "framing",
    "require_cf_clearance",
    "strict_statsig",
    "statsig_prefixes",
    "max_concurrency_per_account",
)


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
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post(CHAT_PATH, self._handle_chat)
        app.router.add_post(UPLOAD_PATH, self._handle_upload)
        app.router.add_post(POST_PATH, self._handle_post)
        app.router.add_post(LIMITS_PATH, self._handle_limits)
        app.router.add_get(ASSETS_PREFIX + "{path:.+}", self._handle_asset)
        app.router.add_get(CONTROL_PREFIX + "requests", self._control_requests)
        app.router.add_post(CONTROL_PREFIX + "reset", self._control_reset)
        app.router.add_post(CONTROL_PREFIX + "fault", self._control_fault)
        app.router.add_get(CONTROL_PREFIX + "accounts", self._control_list_accounts)
        app.router.add_post(CONTROL_PREFIX + "accounts", self._control_add_account)
        app.router.add_post(CONTROL_PREFIX + "config", self._control_config)
        return app

    def chat_calls(self, token: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == CHAT_PATH and (token is None or r.token == token)]

    # ---------------------------------------------------------------- plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path.startswith(CONTROL_PREFIX):
                return await handler(request)
            await self._admit(request)
            return await handler(request)
        except Reject as reject:
            return reject.response

    async def _admit(self, request: web.Request) -> None:
        """Record the call, then apply the checks every grok.com endpoint shares (Cloudflare, statsig)."""
        raw = await request.read()
        cookies = parse_cookies(request.headers.getall("Cookie", []))
        token = sso_token(cookies)
        request["fake_token"] = token
        request["fake_raw"] = raw
        self.record(request, raw, token)
        if self.require_cf_clearance is not None and cookies.get("cf_clearance") != self.require_cf_clearance:
            raise Reject(cloudflare_response())
        if request.path.startswith("/rest/"):
            statsig = request.headers.get("x-statsig-id", "")
            if not statsig or (self.strict_statsig and not statsig_valid(statsig, self.statsig_prefixes)):
                raise Reject(json_response(403, ERR_ANTIBOT))

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

    # ---------------------------------------------------------------- E2 upload, E3 post, E4 limits

    async def _side_fault(self, endpoint: str, account: FakeAccount) -> web.Response | None:
        """Queued faults for E2-E4: a status answer, or ``slow:S`` then the normal answer."""
        fault = self.take_fault(endpoint, account.token)
        if fault is None:
            return None
        suffix = fault.name[len(endpoint) + 1 :]
        if suffix == "slow":
            await asyncio.sleep(fault.seconds(35.0))
            return None
        return status_fault(int(suffix), fault)

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        account = self.resolve(request)
        failed = await self._side_fault("upload", account)
        if failed is not None:
            return failed
        body = json_body(request)
        name, mime, content = body.get("fileName"), body.get("fileMimeType"), body.get("content")
        if not isinstance(name, str) or not isinstance(mime, str) or not isinstance(content, str):
            raise bad_request("fileName, fileMimeType and content are required")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("content is not valid base64") from None
        file_id = self.new_id()
        account.uploads[file_id] = (mime, data)
        return json_response(
            200,
            {
                "fileMetadataId": file_id,
                "fileUri": f"users/{account.user_id}/{file_id}/content",
                "fileName": name,
                "fileMimeType": mime,
                "createTime": now_iso(),
            },
        )

    async def _handle_post(self, request: web.Request) -> web.StreamResponse:
        account = self.resolve(request)
        failed = await self._side_fault("post", account)
        if failed is not None:
            return failed
        body = json_body(request)
        media_url = body.get("media_url", body.get("mediaUrl"))
        media_type = body.get("media_type", body.get("mediaType", "MEDIA_POST_TYPE_IMAGE"))
        prompt = body.get("prompt")
        if not isinstance(media_url, str) and not isinstance(prompt, str):
            raise bad_request("media_url (or mediaUrl / prompt) is required")
        post: JsonDict = {"id": self.new_id(), "mediaType": media_type, "mediaUrl": media_url or ""}
        if isinstance(prompt, str):
            post["prompt"] = prompt
        post.update(userId=account.user_id, createTime=now_iso())
        self.add_post(post)
        return json_response(200, {"post": post})

    async def _handle_limits(self, request: web.Request) -> web.StreamResponse:
        account = self.resolve(request)
        fault = self.take_fault("limits", account.token)
        if fault is not None and fault.name == "limits-slow":
            await asyncio.sleep(fault.seconds(35.0))
        elif fault is not None and fault.name != "limits-missing":
            return status_fault(int(fault.name[len("limits-") :]), fault)
        body = json_body(request)
        model = body.get("modelName")
        if not isinstance(model, str) or not model:
            raise bad_request("modelName is required")
        limits = rate_limits(account, model)
        if fault is not None and fault.name == "limits-missing":
            limits.pop("remainingTokens", None)
        return json_response(200, limits)

    # ---------------------------------------------------------------- E5 assets

    async def _handle_asset(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        alias = path.startswith(ALIAS_SEGMENT)
        path = path[len(ALIAS_SEGMENT) :] if alias else path
        token: str | None = request["fake_token"]
        # The alias is where asset-redirect points, so it takes no queued faults (no redirect loops).
        fault = None if alias else self.take_fault("asset", token)
        if fault is not None:
            early = await self._asset_fault(fault, path)
            if early is not None:
                return early
        if token is None:
            return text_response(403, "Forbidden\n")
        owner, mime, data = self._lookup_asset(path)
        if owner != token:
            return text_response(403, "Forbidden\n")
        if fault is not None and fault.name == "asset-truncated":
            return await _truncated(request, mime, data)
        return web.Response(body=data, content_type=mime, headers={"Cache-Control": "private, max-age=3600"})

    async def _asset_fault(self, fault: Fault, path: str) -> web.StreamResponse | None:
        suffix = fault.name[len("asset-") :]
        if suffix == "slow":
            await asyncio.sleep(fault.seconds(35.0))
            return None
        if suffix == "truncated":
            return None
        if suffix == "redirect":
            return web.Response(status=302, headers={"Location": f"{ASSETS_PREFIX}{ALIAS_SEGMENT}{path}"})
        return status_fault(int(suffix), fault)

    def _lookup_asset(self, path: str) -> tuple[str, str, bytes]:
        """(owner token, mime, bytes) for a generated asset or an upload; 404 when unknown."""
        not_found = Reject(text_response(404, "Not Found\n"))
        if path.endswith("/content"):
            parts = path.split("/")
            account = self.account_by_user_id(parts[1]) if len(parts) == 4 and parts[0] == "users" else None
            upload = account.uploads.get(parts[2]) if account is not None else None
            if account is None or upload is None:
                raise not_found
            return account.token, upload[0], upload[1]
        owner = self.asset_owner(path)
        if owner is None:
            raise not_found
        if path.endswith(".mp4"):
            return owner, "video/mp4", TINY_MP4
        return owner, "image/jpeg", TINY_JPEG

    # ---------------------------------------------------------------- control endpoints

    async def _control_requests(self, request: web.Request) -> web.StreamResponse:
        return json_response(200, [r.to_dict() for r in self.requests])

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.clear()
        return json_response(200, {"ok": True})

    async def _control_fault(self, request: web.Request) -> web.StreamResponse:
        body = await _control_body(request)
        params = body.get("params") or {}
        try:
            if not isinstance(params, dict):
                raise ValueError("params must be an object")
            self.push_fault(
                str(body.get("fault", "")), token=body.get("token"), count=int(body.get("count", 1)), **params
            )
        except (TypeError, ValueError) as exc:
            return error_response(400, 3, str(exc))
        return json_response(200, {"ok": True})

    async def _control_list_accounts(self, request: web.Request) -> web.StreamResponse:
        return json_response(200, [a.to_dict() for a in self.accounts])

    async def _control_add_account(self, request: web.Request) -> web.StreamResponse:
        body = await _control_body(request)
        try:
            account = self.add_account(
                str(body["token"]),
                tier=str(body.get("tier", "basic")),
                state=str(body.get("state", "ok")),
                quota=body.get("quota"),
                heavy_quota=body.get("heavy_quota"),
            )
        except (KeyError, ValueError) as exc:
            return error_response(400, 3, f"bad account: {exc}")
        return json_response(200, account.to_dict())

    async def _control_config(self, request: web.Request) -> web.StreamResponse:
        """Change the knobs a test would otherwise set as attributes on an in-process fake."""
        body = await _control_body(request)
        unknown = set(body) - set(_CONFIG_KEYS)
        if unknown or body.get("framing", "ndjson") not in ("ndjson", "sse"):
            return error_response(400, 3, f"bad config keys or framing: {sorted(unknown)}")
        for key, value in body.items():
            setattr(self, key, tuple(value) if key == "statsig_prefixes" else value)
        return json_response(200, {key: getattr(self, key) for key in _CONFIG_KEYS})


def rate_limits(account: FakeAccount, model: str) -> JsonDict:
    """The E4 answer for one model name, reflecting what E1 has consumed in the current window."""
    account.refresh()
    wait = account.seconds_left()
    if model in HEAVY_LIMIT_NAMES:
        remaining, total = account.heavy_remaining, account.heavy_total
    elif model in TOKEN_BUDGET_MODELS:
        return _token_budget_limits(account, wait)
    else:
        cost = EXPERT_COST if model == "expert" else 1
        remaining, total = account.remaining // cost, account.total // cost
    out: JsonDict = {
        "windowSizeSeconds": account.window_seconds,
        "remainingQueries": remaining,
        "totalQueries": total,
        "lowEffortRateLimits": None,
        "highEffortRateLimits": None,
    }
    if remaining <= 0:
        out["waitTimeSeconds"] = wait
    return out


def _token_budget_limits(account: FakeAccount, wait: int) -> JsonDict:
    low: JsonDict = {"cost": 1, "remainingQueries": account.remaining}
    high: JsonDict = {"cost": EXPERT_COST, "remainingQueries": account.remaining // EXPERT_COST}
    for effort in (low, high):
        if effort["remainingQueries"] <= 0:
            effort["waitTimeSeconds"] = wait
    out: JsonDict = {
        "windowSizeSeconds": account.window_seconds,
        "remainingQueries": 0,
        "totalQueries": 0,
        "remainingTokens": account.remaining,
        "totalTokens": account.total,
        "lowEffortRateLimits": low,
        "highEffortRateLimits": high,
    }
    if account.remaining <= 0:
        out["waitTimeSeconds"] = wait
    return out


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


async def _truncated(request: web.Request, mime: str, data: bytes) -> web.StreamResponse:
    """Promise more bytes than exist, send what there is, then hang up."""
    response = web.StreamResponse(status=200, headers={"Content-Type": mime})
    response.content_length = len(data) + 4096
    await response.prepare(request)
    await response.write(data)
    if request.transport is not None:
        request.transport.close()
    return response


async def _control_body(request: web.Request) -> JsonDict:
    raw = await request.read()
    try:
        body = decode_json(raw) if raw else {}
    except msgspec.DecodeError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


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

"""One chat turn on grok.com: upload the attachments with the serving account, build the request
(a chat message, or a video made from the prompt and the first image) and stream its events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..settings import RuntimeSettings
from .catalog import ModelSpec
from .client import GrokClient
from .errors import UploadRejected
from .events import Event
from .mgw import stream_mgw
from .video import VideoOptions, imagine_referer, video_payload

log = logging.getLogger("grok2api.grok.chat")
UPLOAD_CONCURRENCY = 4


class Attachment(Protocol):
    """An image ready to upload (the client side checked its type and size)."""

    @property
    def file_name(self) -> str: ...
    @property
    def mime(self) -> str: ...
    @property
    def b64(self) -> str: ...


@dataclass
class ChatTurn:
    """What to ask grok.com: the model, the prompt text and the images to attach (for a video model,
    what kind of video: its defaults when ``video`` is None)."""

    spec: ModelSpec
    message: str
    attachments: Sequence[Attachment] = field(default_factory=list)
    video: VideoOptions | None = None


@dataclass
class TurnRequest:
    """A prepared turn: over the chat WebSocket (``payload`` None), or one HTTP POST."""

    mode: str
    message: str
    file_ids: list[str] = field(default_factory=list)
    user_id: str = ""  # the account's grok.com user id (the WebSocket needs it)
    payload: dict[str, Any] | None = None
    referer: str | None = None


def mode_chat_payload(mode: str, message: str, file_ids: list[str], settings: RuntimeSettings) -> dict[str, Any]:
    """The REST chat body of the mode era (``modeId``), for ``conversations/new``; grok.com refuses
    the older ``modelName``/``modelMode`` body."""
    return {
        "temporary": settings.temporary,
        "modeId": mode,
        "message": message,
        "fileAttachments": file_ids,
        "imageAttachments": [],
        "disableSearch": False,
        "enableImageGeneration": True,
        "enableImageStreaming": True,
        "imageGenerationCount": 2,
        "enableSideBySide": True,
        "forceSideBySide": False,
        "forceConcise": False,
        "isAsyncChat": False,
        "disableMemory": settings.temporary,
        "disableTextFollowUps": False,
        "disableSelfHarmShortCircuit": False,
        "returnImageBytes": False,
        "returnRawGrokInXaiRequest": False,
        "sendFinalMetadata": True,
        "responseMetadata": {},
        "collectionIds": [],
        "disabledConnectorIds": [],
        "deviceEnvInfo": {
            "darkModeEnabled": False,
            "devicePixelRatio": 2,
            "screenWidth": 2056,
            "screenHeight": 1328,
            "viewportWidth": 2056,
            "viewportHeight": 1083,
        },
    }


async def upload_all(
    client: GrokClient,
    token: str,
    attachments: Sequence[Attachment],
    settings: RuntimeSettings,
    *,
    source: str | None = None,
) -> list[tuple[str, str]]:
    """(file id, file uri) per attachment, a few uploads at a time. A file grok.com refuses raises
    UploadRejected carrying its position."""
    if not attachments:  # most turns: nothing to set up
        return []
    sem = asyncio.Semaphore(UPLOAD_CONCURRENCY)

    async def one(index: int, item: Attachment) -> tuple[str, str]:
        async with sem:
            try:
                return await client.upload(token, item.file_name, item.mime, item.b64, settings, source=source)
            except UploadRejected as exc:
                raise UploadRejected(exc.reason, index) from None

    return list(await asyncio.gather(*(one(i, a) for i, a in enumerate(attachments))))


def _video_request(turn: ChatTurn, uploaded: list[tuple[str, str]], settings: RuntimeSettings) -> TurnRequest:
    file_ids = [u[0] for u in uploaded[:1]]
    options = turn.video or VideoOptions()
    payload = video_payload(turn.message, options, file_ids[0] if file_ids else None, settings)
    return TurnRequest(turn.spec.mode, turn.message, file_ids, payload=payload, referer=imagine_referer(settings))


async def prepare_turn(
    client: GrokClient, token: str, user_id: str, turn: ChatTurn, settings: RuntimeSettings
) -> TurnRequest:
    """Upload the turn's images with the account's ``token`` and decide how to send it: over the chat
    WebSocket (resolving the account's user id when ``user_id`` is not known yet), over REST when
    ``chat_transport`` is ``rest``, and a video (with or without an image) always over REST."""
    attachments = list(turn.attachments)
    if turn.spec.video and len(attachments) > 1:
        log.info("video uses only the first image; %d more were not uploaded", len(attachments) - 1)
        attachments = attachments[:1]
    uploaded = await upload_all(client, token, attachments, settings) if attachments else []
    if turn.spec.video:
        return _video_request(turn, uploaded, settings)
    file_ids = [u[0] for u in uploaded]
    mode = turn.spec.mode
    if settings.chat_transport == "rest":
        return TurnRequest(
            mode, turn.message, file_ids, payload=mode_chat_payload(mode, turn.message, file_ids, settings)
        )
    user_id = user_id or await client.auth_session(token, settings)
    return TurnRequest(mode, turn.message, file_ids, user_id=user_id)


def stream_turn(
    client: GrokClient,
    token: str,
    request: TurnRequest,
    settings: RuntimeSettings,
    admitted: Awaitable[bool] | None = None,
    on_sent: Callable[[], object] | None = None,
) -> AsyncGenerator[list[Event], None]:
    """The turn's events. ``admitted`` (over the WebSocket only) is awaited before the message is sent, and
    ``on_sent`` called once the socket's handshake request is out (see ``stream_mgw``); a REST call sends its
    message at once, so its caller waits for that first."""
    if request.payload is not None:
        return client.stream_chat(token, request.payload, settings, referer=request.referer)
    return stream_mgw(
        client.sockets_for(token),
        token,
        request.user_id,
        request.mode,
        request.message,
        request.file_ids,
        settings,
        admitted=admitted,
        on_sent=on_sent,
        spares=client.spares,
    )

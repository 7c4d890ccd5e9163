"""One chat turn on grok.com: upload the attachments with the serving account, build the request
(a chat message, or a video generated from the first image) and stream its events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..settings import RuntimeSettings
from .catalog import ModelSpec
from .client import GrokClient
from .errors import TRANSPORT_ERRORS, UploadRejected
from .events import Event
from .mgw import stream_mgw

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
    """What to ask grok.com: the model, the prompt text and the images to attach."""

    spec: ModelSpec
    message: str
    attachments: Sequence[Attachment] = field(default_factory=list)


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


def video_payload(post_ref: str, prompt: str, file_ids: list[str]) -> dict[str, Any]:
    return {
        "temporary": True,
        "modelName": "grok-3",
        "message": f"{post_ref}  {prompt} --mode=custom",
        "fileAttachments": file_ids,
        "toolOverrides": {"videoGen": True},
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
    sem = asyncio.Semaphore(UPLOAD_CONCURRENCY)

    async def one(index: int, item: Attachment) -> tuple[str, str]:
        async with sem:
            try:
                return await client.upload(token, item.file_name, item.mime, item.b64, settings, source=source)
            except UploadRejected as exc:
                raise UploadRejected(exc.reason, index) from None

    return list(await asyncio.gather(*(one(i, a) for i, a in enumerate(attachments))))


async def _video_request(
    client: GrokClient, token: str, turn: ChatTurn, uploaded: list[tuple[str, str]], settings: RuntimeSettings
) -> TurnRequest:
    file_id, file_uri = uploaded[0]
    try:
        post_id = await client.create_post(token, f"{settings.assets_url}/{file_uri}", settings)
        ref = referer = f"{settings.upstream_url}/imagine/{post_id}"
    except TRANSPORT_ERRORS as exc:
        log.info("media post failed (%s); using the asset link", exc)
        ref, referer = f"{settings.assets_url}/post/{file_uri}", f"{settings.upstream_url}/imagine/{file_id}"
    payload = video_payload(ref, turn.message, [file_id])
    return TurnRequest(turn.spec.mode, turn.message, [file_id], payload=payload, referer=referer)


async def prepare_turn(
    client: GrokClient, token: str, user_id: str, turn: ChatTurn, settings: RuntimeSettings
) -> TurnRequest:
    """Upload the turn's images with the account's ``token`` and decide how to send it: over the chat
    WebSocket (resolving the account's user id when ``user_id`` is not known yet), over REST when
    ``chat_transport`` is ``rest``, and a video always over REST."""
    attachments = list(turn.attachments)
    if turn.spec.video and len(attachments) > 1:
        log.info("video uses only the first image; %d more were not uploaded", len(attachments) - 1)
        attachments = attachments[:1]
    uploaded = await upload_all(client, token, attachments, settings)
    if turn.spec.video and uploaded:
        return await _video_request(client, token, turn, uploaded, settings)
    file_ids = [u[0] for u in uploaded]
    mode = turn.spec.mode
    if settings.chat_transport == "rest":
        return TurnRequest(
            mode, turn.message, file_ids, payload=mode_chat_payload(mode, turn.message, file_ids, settings)
        )
    user_id = user_id or await client.auth_session(token, settings)
    return TurnRequest(mode, turn.message, file_ids, user_id=user_id)


def stream_turn(
    client: GrokClient, token: str, request: TurnRequest, settings: RuntimeSettings
) -> AsyncGenerator[list[Event], None]:
    if request.payload is not None:
        return client.stream_chat(token, request.payload, settings, referer=request.referer)
    return stream_mgw(client.sockets, token, request.user_id, request.mode, request.message, request.file_ids, settings)

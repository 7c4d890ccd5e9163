"""The Imagine image edit on ``POST /rest/app-chat/conversations/new`` (``fake_chat`` hands it over):
``{"modelName": "imagine-image-edit", "message", "mediaGenInput": {"imageToImage": {"prompt", "inputAssets":
[fileMetadataId…], "aspectRatio"?}}, …}``.

The answer is NDJSON: the conversation, then per edited image (two, side by side; one with ``enableSideBySide``
false) ``streamingImageGenerationResponse`` frames named by ``imageId``: progress 50 with a ``-part-0`` preview
``imageUrl``, then progress 100 ``isFinal`` with the final one (moderated images: ``moderated`` and no url), and a
closing ``modelResponse`` listing the good ones in ``generatedImageUrls``. ``[[moderate…]]`` markers work as on the
WebSocket. The older edit shapes are refused as grok.com refuses them: a body naming the edit model without
``mediaGenInput.imageToImage`` (the ``modelConfigOverride`` variant) gets 400 "Invalid request. Please update your
client"; ``inputAssets`` the account never uploaded get 400 "File … not found". A queued chat refusal (``401``,
``403-…``, ``429``, ``5xx``) answers instead.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from .fake_accounts import FakeAccount
from .fake_chat_request import ERR_OUTDATED_CLIENT
from .fake_errors import ERR_RATE, refusal_response
from .fake_faults import MGW_HANDSHAKE_FAULTS
from .fake_http import JsonDict, Reject, bad_request, encode_json, json_response, now_iso
from .fake_imagine_images import make_image, moderated_positions
from .fake_imagine_windows import charge_imagine
from .fake_state import FakeState

EDIT_MODEL = "imagine-image-edit"


def is_edit(body: JsonDict) -> bool:
    """A body for the edit handler: it names the edit model or carries an image-to-image input."""
    media = body.get("mediaGenInput")
    return body.get("modelName") == EDIT_MODEL or (isinstance(media, dict) and "imageToImage" in media)


def _edit_input(body: JsonDict, account: FakeAccount) -> JsonDict:
    media = body.get("mediaGenInput")
    edit = media.get("imageToImage") if isinstance(media, dict) else None
    if body.get("modelName") != EDIT_MODEL or not isinstance(edit, dict):
        raise Reject(json_response(400, ERR_OUTDATED_CLIENT))
    assets = edit.get("inputAssets")
    if not isinstance(edit.get("prompt"), str) or not edit["prompt"].strip():
        raise bad_request("imageToImage.prompt is required")
    if not isinstance(assets, list) or not assets or not all(isinstance(a, str) for a in assets):
        raise bad_request("imageToImage.inputAssets must list the uploaded files")
    for asset in assets:
        if asset not in account.uploads:
            raise bad_request(f"File {asset} not found")
    return edit


async def handle_edit(
    request: web.Request, state: FakeState, account: FakeAccount, body: JsonDict
) -> web.StreamResponse:
    fault = state.take_fault("chat", account.token, MGW_HANDSHAKE_FAULTS)
    if fault is not None:
        return refusal_response(fault)
    edit = _edit_input(body, account)
    if not charge_imagine(account, "imageEdit"):
        return json_response(429, ERR_RATE)
    lines = _answer(state, account, edit, count=2 if body.get("enableSideBySide") is not False else 1)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        for line in lines:
            if state.token_delay > 0:
                await asyncio.sleep(state.token_delay)
            await response.write(encode_json(line) + b"\n")
        await response.write_eof()
    return response


def _answer(state: FakeState, account: FakeAccount, edit: JsonDict, count: int) -> list[JsonDict]:
    prompt = str(edit["prompt"])
    images = [make_image(state, account) for _ in range(count)]
    moderated = moderated_positions(prompt, count)
    response_id = state.new_id()

    def frame(response: JsonDict) -> JsonDict:
        return {"result": {"response": {**response, "responseId": response_id, "isThinking": False}}}

    lines: list[JsonDict] = [
        {"result": {"conversation": {"conversationId": state.new_id(), "title": prompt[:40], "createTime": now_iso()}}},
        frame({"userResponse": {"responseId": state.new_id(), "message": prompt, "sender": "human"}}),
    ]
    for progress in (50, 100):
        for index, image in enumerate(images):
            shot: JsonDict = {"imageId": image.id, "progress": progress, "moderated": index in moderated}
            shot["isFinal"] = progress == 100
            if index not in moderated:
                shot["imageUrl"] = image.url if progress == 100 else image.preview_url
            lines.append(frame({"streamingImageGenerationResponse": shot}))
    finals = [image.url for index, image in enumerate(images) if index not in moderated]
    lines.append(frame({"modelResponse": {"message": "", "generatedImageUrls": finals, "sender": "assistant"}}))
    return lines

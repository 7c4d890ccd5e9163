"""Media endpoints: E2 ``POST /rest/app-chat/upload-file``, E3 ``POST /rest/media/post/create`` and E5 ``GET
/assets/<path>``, which serves uploads and the images and videos a chat generated (one tiny JPEG, one H.264 clip).
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from .fake_errors import status_or_slow
from .fake_faults import Fault
from .fake_http import JsonDict, Reject, bad_request, json_body, json_response, now_iso, request_token, text_response
from .fake_state import FakeState, state_of

UPLOAD_PATH = "/rest/app-chat/upload-file"
POST_PATH = "/rest/media/post/create"
ASSETS_PREFIX = "/assets/"
# A second spelling of every asset path, the target of the ``asset-redirect`` fault.
ALIAS_SEGMENT = "_alias/"

# A 64x64 colour baseline JPEG (four flat quadrants), made with a browser's encoder; any decoder shows it. 64x64 is
# what grok.com's upload v2 takes as the smallest image.
TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d283a"
    "333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffdb0043011112121815182f1a1a2f"
    "63423842636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363"
    "6363ffc00011080040004003012200021101031101ffc40017000101010100000000000000000000000000030504ffc400141001"
    "00000000000000000000000000000000ffc4001801010101010100000000000000000000000006020405ffc40014110100000000"
    "000000000000000000000000ffda000c03010002110311003f00e301e6284001601de93000440702b0001601de93000000000648"
    "0a764001ac0261a0006480a764001fffd9"
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

routes = web.RouteTableDef()


@routes.post(UPLOAD_PATH)
async def handle_upload(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    account = state.resolve(request)
    failed = await status_or_slow(state.take_fault("upload", account.token))
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
    file_id = state.new_id()
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


@routes.post(POST_PATH)
async def handle_post(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    account = state.resolve(request)
    failed = await status_or_slow(state.take_fault("post", account.token))
    if failed is not None:
        return failed
    body = json_body(request)
    media_url = body.get("media_url", body.get("mediaUrl"))
    media_type = body.get("media_type", body.get("mediaType", "MEDIA_POST_TYPE_IMAGE"))
    prompt = body.get("prompt")
    if not isinstance(media_url, str) and not isinstance(prompt, str):
        raise bad_request("media_url (or mediaUrl / prompt) is required")
    post: JsonDict = {"id": state.new_id(), "mediaType": media_type, "mediaUrl": media_url or ""}
    if isinstance(prompt, str):
        post["prompt"] = prompt
    post.update(userId=account.user_id, createTime=now_iso())
    state.add_post(post)
    return json_response(200, {"post": post})


@routes.get(ASSETS_PREFIX + "{path:.+}")
async def handle_asset(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    path = request.match_info["path"]
    alias = path.startswith(ALIAS_SEGMENT)
    path = path[len(ALIAS_SEGMENT) :] if alias else path
    token = request_token(request)
    # The alias is where asset-redirect points, so it takes no queued faults (no redirect loops).
    fault = None if alias else state.take_fault("asset", token)
    if fault is not None:
        early = await _asset_fault(fault, path)
        if early is not None:
            return early
    if token is None:
        return text_response(403, "Forbidden\n")
    owner, mime, data = _lookup_asset(state, path)
    if owner != token:
        return text_response(403, "Forbidden\n")
    if fault is not None and fault.name == "asset-truncated":
        return await _truncated(request, mime, data)
    return web.Response(body=data, content_type=mime, headers={"Cache-Control": "private, max-age=3600"})


async def _asset_fault(fault: Fault, path: str) -> web.StreamResponse | None:
    if fault.name == "asset-redirect":
        return web.Response(status=302, headers={"Location": f"{ASSETS_PREFIX}{ALIAS_SEGMENT}{path}"})
    return await status_or_slow(fault)


def _lookup_asset(state: FakeState, path: str) -> tuple[str, str, bytes]:
    """(owner token, mime, bytes) for a generated asset or an upload; 404 when unknown."""
    not_found = Reject(text_response(404, "Not Found\n"))
    if path.endswith("/content"):
        parts = path.split("/")
        account = state.account_by_user_id(parts[1]) if len(parts) == 4 and parts[0] == "users" else None
        upload = account.uploads.get(parts[2]) if account is not None else None
        if account is None or upload is None:
            raise not_found
        return account.token, upload[0], upload[1]
    owner = state.asset_owner(path)
    if owner is None:
        raise not_found
    if path.endswith(".mp4"):
        return owner, "video/mp4", TINY_MP4
    return owner, "image/jpeg", TINY_JPEG


async def _truncated(request: web.Request, mime: str, data: bytes) -> web.StreamResponse:
    """Promise more bytes than exist, send what there is, then hang up."""
    response = web.StreamResponse(status=200, headers={"Content-Type": mime})
    response.content_length = len(data) + 4096
    await response.prepare(request)
    await response.write(data)
    if request.transport is not None:
        request.transport.close()
    return response

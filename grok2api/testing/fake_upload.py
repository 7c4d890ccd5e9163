"""Upload v2: ``POST /http/upload-file-v2/direct``, multipart with the part ``file`` (filename, Content-Type) and an
optional field ``file_source`` (``IMAGINE_SELF_UPLOAD_FILE_SOURCE`` for Imagine edits).

The answer is ``{uploadId, fileMetadata: {fileMetadataId, fileId, fileUri}, terminalError}``. The file becomes one of
the account's uploads (chat ``file_mention``, edit ``inputAssets``, ``GET /assets/<fileUri>``). An image smaller than
``MIN_IMAGE_SIDE`` on a side gets a 200 whose ``terminalError`` says "Image dimensions are insufficient" and is not
kept, as grok.com does with a 1×1 image. ``uploadv2-<status>`` faults answer with that status (404/405/410/501 are
what make a client fall back to the legacy JSON upload).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from aiohttp import web

from ..image_input import image_dimensions, sniff_image
from .fake_errors import status_or_slow
from .fake_http import RAW_KEY, JsonDict, bad_request, json_response
from .fake_records import RecordedRequest
from .fake_state import state_of

UPLOAD_V2_PATH = "/http/upload-file-v2/direct"
IMAGINE_FILE_SOURCE = "IMAGINE_SELF_UPLOAD_FILE_SOURCE"
MIN_IMAGE_SIDE = 64
DIMENSIONS_INSUFFICIENT = "Image dimensions are insufficient"

routes = web.RouteTableDef()


def solid_png(width: int, height: int) -> bytes:
    """A valid grey PNG of any size: 1×1 for the dimension check, larger for images it takes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([128]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def parse_multipart(raw: bytes, content_type: str) -> dict[str, Message]:
    """The parts of a multipart/form-data body by field name (the first of each name)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise bad_request("expected a multipart/form-data body")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    parts: dict[str, Message] = {}
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            parts.setdefault(name, part)
    return parts


@dataclass
class SentFile:
    """What one upload v2 call carried, for tests: the file part and the ``file_source`` field."""

    filename: str
    content_type: str
    data: bytes
    source: str | None


def sent_file(record: RecordedRequest) -> SentFile:
    """Read a recorded upload v2 call back (its body must be whole: under 64 KiB)."""
    parts = parse_multipart(record.raw, record.headers.get("content-type", ""))
    file_part, source = parts["file"], parts.get("file_source")
    return SentFile(
        file_part.get_filename() or "",
        file_part.get_content_type(),
        _payload(file_part),
        _payload(source).decode() if source is not None else None,
    )


def _payload(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _terminal_error(data: bytes) -> JsonDict | None:
    size = image_dimensions(data) if sniff_image(data) else None
    if size is not None and min(size) < MIN_IMAGE_SIDE:
        return {"code": "INVALID_ARGUMENT", "message": DIMENSIONS_INSUFFICIENT}
    return None


@routes.post(UPLOAD_V2_PATH)
async def handle_upload_v2(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    account = state.resolve(request)
    failed = await status_or_slow(state.take_fault("uploadv2", account.token))
    if failed is not None:
        return failed
    parts = parse_multipart(request[RAW_KEY], request.headers.get("Content-Type", ""))
    file_part = parts.get("file")
    if file_part is None or not file_part.get_filename():
        raise bad_request("the multipart part 'file' with a filename is required")
    data = _payload(file_part)
    if not data:
        raise bad_request("the uploaded file is empty")
    upload_id = state.new_id()
    error = _terminal_error(data)
    if error is not None:
        return json_response(200, {"uploadId": upload_id, "fileMetadata": None, "terminalError": error})
    file_id = state.new_id()
    account.uploads[file_id] = (file_part.get_content_type(), data)
    meta = {
        "fileMetadataId": file_id,
        "fileId": state.new_id(),
        "fileUri": f"users/{account.user_id}/{file_id}/content",
    }
    return json_response(200, {"uploadId": upload_id, "fileMetadata": meta, "terminalError": None})

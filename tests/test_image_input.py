from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web

from grok2api import image_input
from grok2api.errors import InvalidRequest
from grok2api.grok.transport import HttpPool
from grok2api.image_input import forbidden_address, image_dimensions, prepare_bytes, prepare_images
from grok2api.settings import RuntimeSettings
from grok2api.testing.fake_grok import TINY_JPEG, UPLOAD_PATH, UPLOAD_V2_PATH, FakeGrok
from grok2api.testing.fake_upload import DIMENSIONS_INSUFFICIENT, SentFile, sent_file, solid_png

from harness import LiveGateway, upstream_chats

PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)
JPEG_B64 = base64.b64encode(TINY_JPEG).decode()
ALLOWED = RuntimeSettings(allow_private_image_urls=True)
DEFAULT = RuntimeSettings()


class ImageServer:
    """A small image host on 127.0.0.1 with the misbehaviours a user URL can have."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.url = ""
        app = web.Application()
        app.router.add_get("/cat.jpg", self.cat)
        app.router.add_get("/big", self.big)
        app.router.add_get("/big-chunked", self.big_chunked)
        app.router.add_get("/page", self.page)
        app.router.add_get("/missing", self.missing)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/to-cat", self.to_cat)
        app.router.add_get("/loop", self.loop)
        app.router.add_get("/away", self.away)
        self.runner = web.AppRunner(app, access_log=None)

    async def cat(self, request: web.Request) -> web.Response:
        self.hosts.append(request.host)
        return web.Response(body=TINY_JPEG, content_type="image/jpeg")

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xd8\xff" + bytes(2 * 1024 * 1024), content_type="image/jpeg")

    async def big_chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(40):
            await response.write(bytes(64 * 1024))
        await response.write_eof()
        return response

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(body=TINY_JPEG)

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not an image</html>", content_type="text/html")

    async def missing(self, request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def to_cat(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/cat.jpg"})

    async def loop(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/loop"})

    async def away(self, request: web.Request) -> web.Response:
        # The same server under another loopback address, standing for a private host.
        return web.Response(status=302, headers={"Location": self.url.replace("127.0.0.1", "127.0.0.2") + "/cat.jpg"})

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self.url


@pytest.fixture
async def images() -> AsyncIterator[ImageServer]:
    server = ImageServer()
    await server.start()
    try:
        yield server
    finally:
        await server.runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    try:
        yield pool
    finally:
        await pool.close()


async def _bad(urls: list[str], settings: RuntimeSettings, http: HttpPool) -> str:
    with pytest.raises(InvalidRequest) as info:
        await prepare_images(urls, settings, http)
    assert info.value.status == 400
    return info.value.message


# ---- addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 of 169.254.169.254
        ("2002:7f00:0001::1", True),  # 6to4 of 127.0.0.1
        ("::127.0.0.1", True),  # IPv4-compatible
        ("::10.0.0.1", True),
        ("::ffff:0:7f00:1", True),  # IPv4-translated (SIIT) of 127.0.0.1
        ("::ffff:0:a9fe:a9fe", True),
        ("fec0::1", True),  # site-local
        ("feff:ffff::1", True),
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
        ("64:ff9b::c0a8:101", True),  # NAT64 of 192.168.1.1
        ("64:ff9b:1::808:808", True),  # local-use NAT64: not globally routed whatever it embeds
        ("2002:c0a8:0101::1", True),  # 6to4 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", True),  # Teredo, client 127.0.0.1 (stored inverted)
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),  # Teredo, client 192.0.2.45
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("::ffff:8.8.8.8", False),  # the same checks let public IPv4 through in every form
        ("64:ff9b::808:808", False),
        ("2002:808:808::1", False),
    ],
)
def test_forbidden_addresses(address: str, forbidden: bool) -> None:
    assert forbidden_address(ipaddress.ip_address(address)) is forbidden


# ---- inline images -------------------------------------------------------------------------------


async def test_data_urls_and_bare_base64(http: HttpPool) -> None:
    png_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    wrapped = "\n".join(JPEG_B64[i : i + 60] for i in range(0, len(JPEG_B64), 60))  # MIME line breaks
    got = await prepare_images([f"data:image/jpeg;base64,{JPEG_B64}", png_url, wrapped], DEFAULT, http)
    assert [(g.file_name, g.mime) for g in got] == [
        ("image.jpeg", "image/jpeg"),
        ("image.png", "image/png"),
        ("image.jpeg", "image/jpeg"),
    ]
    assert base64.b64decode(got[0].b64) == TINY_JPEG
    assert base64.b64decode(got[1].b64) == PNG
    # The declared type is not trusted: PNG bytes labelled as JPEG upload as PNG.
    (relabelled,) = await prepare_images(["data:image/jpeg;base64," + base64.b64encode(PNG).decode()], DEFAULT, http)
    assert relabelled.mime == "image/png"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("data:text/plain;base64," + base64.b64encode(b"hello world").decode(), "not a JPEG, PNG"),
        ("data:image/svg+xml,<svg></svg>", "must be base64-encoded"),
        ("%%%not base64%%%", "neither an http(s) URL"),
        ("", "the image is empty"),
        ("file:///etc/passwd", "unsupported image URL scheme 'file'"),
        ("ftp://example.com/cat.jpg", "unsupported image URL scheme 'ftp'"),
        ("http:///cat.jpg", "has no host"),
    ],
)
async def test_bad_inline_images_are_a_clear_400(http: HttpPool, url: str, expected: str) -> None:
    message = await _bad(["data:image/jpeg;base64," + JPEG_B64, url], DEFAULT, http)
    assert message.startswith("image 2: ")
    assert expected in message


async def test_inline_images_are_size_capped(http: HttpPool) -> None:
    settings = RuntimeSettings(image_fetch_max_mb=1)
    huge = base64.b64encode(b"\xff\xd8\xff" + bytes(1024 * 1024)).decode()
    assert "larger than 1 MB" in await _bad([f"data:image/jpeg;base64,{huge}"], settings, http)
    assert "larger than 1 MB" in await _bad([huge], settings, http)
    with pytest.raises(InvalidRequest, match="larger than 1 MB"):
        prepare_bytes(base64.b64decode(huge), settings)
    assert prepare_bytes(TINY_JPEG, settings).mime == "image/jpeg"


# ---- user URLs ---------------------------------------------------------------------------------


async def test_loopback_url_is_refused_unless_allowed(images: ImageServer, http: HttpPool) -> None:
    message = await _bad([f"{images.url}/cat.jpg"], DEFAULT, http)
    assert "private, loopback or link-local address (127.0.0.1)" in message
    assert "allow_private_image_urls" in message
    assert "not allowed" in await _bad([f"http://localhost:{images.url.rsplit(':', 1)[1]}/cat.jpg"], DEFAULT, http)
    assert images.hosts == []  # refused before connecting
    (got,) = await prepare_images([f"{images.url}/cat.jpg"], ALLOWED, http)
    assert base64.b64decode(got.b64) == TINY_JPEG


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/missing", "answered HTTP 404"),
        ("/page", "not a JPEG, PNG"),
        ("/big", "larger than 1 MB"),
        ("/big-chunked", "larger than 1 MB"),
        ("/loop", "more than 3 redirects"),
    ],
)
async def test_bad_user_urls_are_a_clear_400(images: ImageServer, http: HttpPool, path: str, expected: str) -> None:
    settings = RuntimeSettings(allow_private_image_urls=True, image_fetch_max_mb=1)
    assert expected in await _bad([images.url + path], settings, http)


async def test_user_urls_are_time_capped(images: ImageServer, http: HttpPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_input, "FETCH_TIMEOUT", 0.3)
    assert "took longer than" in await _bad([images.url + "/slow"], ALLOWED, http)


async def test_connections_are_pinned_and_redirects_rechecked(
    images: ImageServer, http: HttpPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend 127.0.0.1 is public so the guarded path runs; 127.0.0.2 stands for a private address.
    monkeypatch.setattr(image_input, "forbidden_address", lambda addr: str(addr) == "127.0.0.2")
    port = images.url.rsplit(":", 1)[1]
    (got,) = await prepare_images([f"http://localhost:{port}/to-cat"], DEFAULT, http)
    assert base64.b64decode(got.b64) == TINY_JPEG
    assert images.hosts == [f"localhost:{port}"]  # connected by address, Host kept
    assert "(127.0.0.2) is not allowed" in await _bad([images.url + "/away"], DEFAULT, http)


# ---- end to end through the chat endpoint --------------------------------------------------------


def _uploads(fake: FakeGrok) -> list[SentFile]:
    """The upload v2 calls the fake received, read back (the legacy upload is never used here)."""
    assert not [r for r in fake.requests if r.path == UPLOAD_PATH]
    return [sent_file(r) for r in fake.requests if r.path == UPLOAD_V2_PATH]


def _image_message(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


async def test_chat_uploads_a_data_url_image(
    fake: FakeGrok, gateway: LiveGateway, client: Any, chat_transport: str
) -> None:
    await gateway.add_accounts("img-in")
    reply = await client.chat.completions.create(
        model="grok-3-fast", messages=_image_message(f"data:image/jpeg;base64,{JPEG_B64}")
    )
    assert reply.choices[0].message.content
    (upload,) = _uploads(fake)
    (call,) = [r for r in fake.requests if r.path == UPLOAD_V2_PATH]
    assert call.token == "img-in"  # uploaded with the account that answers
    assert "x-xai-request-id" not in call.headers
    assert (upload.filename, upload.content_type, upload.data, upload.source) == (
        "image.jpeg",
        "image/jpeg",
        TINY_JPEG,
        None,  # a chat upload names no file_source
    )
    (file_id,) = fake.account("img-in").uploads  # the fileMetadataId
    (chat,) = upstream_chats(fake)
    assert (chat.transport, chat.token, chat.file_ids) == (chat_transport, "img-in", [file_id])
    assert "what is this?" in chat.message
    if chat_transport == "ws":
        # the file is mentioned before the text, and named on the item too
        (session,) = fake.mgw_sessions("img-in")
        mention, text = session.input_chunks
        assert mention == {"mention": {"target": {"file_mention": {"file_id": file_id}}}}
        assert text["text"]["text"] == chat.message
        (item_event,) = [r["event"] for r in session.received if r["event"]["type"] == "conversation.item.create"]
        assert item_event["item"]["file_attachment_ids"] == [file_id]


async def test_a_refused_upload_is_a_400_naming_the_image_and_is_not_retried(
    fake: FakeGrok, gateway: LiveGateway, client: Any, chat_transport: str
) -> None:
    await gateway.add_accounts("img-a", "img-b")
    tiny = "data:image/png;base64," + base64.b64encode(solid_png(1, 1)).decode()
    messages = _image_message(f"data:image/jpeg;base64,{JPEG_B64}")
    messages[0]["content"].append({"type": "image_url", "image_url": {"url": tiny}})
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=messages)
    error = info.value.response.json()["error"]
    assert error["message"] == f"image 2: grok.com refused the upload: {DIMENSIONS_INSUFFICIENT}"
    assert (error["param"], error["code"]) == ("messages", "invalid_image")
    # The image is at fault, not the account: one attempt, no chat, nothing held against it.
    assert len({u.token for u in [r for r in fake.requests if r.path == UPLOAD_V2_PATH]}) == 1
    assert upstream_chats(fake) == []
    for account in await gateway.services.store.list_accounts():
        assert (account.state, account.last_failure) == ("active", "")


async def test_chat_falls_back_to_the_legacy_upload_when_v2_is_missing(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    await gateway.add_accounts("img-old")
    fake.push_fault("uploadv2-404")
    reply = await client.chat.completions.create(
        model="grok-3-fast", messages=_image_message(f"data:image/jpeg;base64,{JPEG_B64}")
    )
    assert reply.choices[0].message.content
    (legacy,) = [r for r in fake.requests if r.path == UPLOAD_PATH]
    assert base64.b64decode(legacy.json["content"]) == TINY_JPEG
    (file_id,) = fake.account("img-old").uploads
    assert upstream_chats(fake)[0].file_ids == [file_id]


@pytest.mark.parametrize("status", [500, 429, 401])
async def test_other_v2_failures_do_not_fall_back(
    fake: FakeGrok, gateway: LiveGateway, client: Any, status: int
) -> None:
    await gateway.add_accounts("img-v2")
    fake.push_fault(f"uploadv2-{status}")
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(
            model="grok-3-fast", messages=_image_message(f"data:image/jpeg;base64,{JPEG_B64}")
        )
    assert not [r for r in fake.requests if r.path == UPLOAD_PATH]


def test_image_dimensions_are_read_from_the_header() -> None:
    assert image_dimensions(TINY_JPEG) == (64, 64)
    assert image_dimensions(solid_png(3, 2)) == (3, 2)
    assert image_dimensions(b"GIF89a\x05\x00\x07\x00") == (5, 7)
    bmp = b"BM" + bytes(16) + (9).to_bytes(4, "little") + (-4).to_bytes(4, "little", signed=True)
    assert image_dimensions(bmp) == (9, 4)  # a top-down BMP's height is negative
    webp = b"RIFF" + bytes(4) + b"WEBPVP8X" + bytes(8) + (99).to_bytes(3, "little") + (49).to_bytes(3, "little")
    assert image_dimensions(webp) == (100, 50)
    assert image_dimensions(b"\xff\xd8\xff\xe0\x00\x02") is None  # a JPEG cut before its frame header
    assert image_dimensions(b"not an image") is None


async def test_chat_refuses_a_loopback_url_until_allowed(
    fake: FakeGrok, gateway: LiveGateway, client: Any, images: ImageServer
) -> None:
    await gateway.add_accounts("img-url")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_image_message(f"{images.url}/cat.jpg"))
    assert "loopback" in info.value.message
    assert upstream_chats(fake) == [] and _uploads(fake) == []  # nothing was sent upstream, no quota used
    await gateway.settings(allow_private_image_urls=True)
    await client.chat.completions.create(model="grok-3-fast", messages=_image_message(f"{images.url}/cat.jpg"))
    (upload,) = _uploads(fake)
    assert upload.data == TINY_JPEG


@pytest.mark.parametrize(
    ("url", "reason"),
    [("http://example.invalid:99999/x.png", "not a valid URL"), ("https:///x.png", "has no host")],
)
async def test_malformed_image_urls_are_a_clear_400(url: str, reason: str) -> None:
    from grok2api.errors import InvalidRequest
    from grok2api.grok.transport import HttpPool
    from grok2api.image_input import prepare_images
    from grok2api.settings import RuntimeSettings

    http = HttpPool()
    try:
        with pytest.raises(InvalidRequest) as info:
            await prepare_images([url], RuntimeSettings(), http)
        assert reason in info.value.message
    finally:
        await http.close()

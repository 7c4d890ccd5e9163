"""The aiohttp client for grok.com at the unit level, with aioresponses standing in for the network."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import msgspec
import pytest
from aioresponses import aioresponses
from yarl import URL

from grok2api.grok.catalog import MODELS
from grok2api.grok.client import (
    IMAGINE_UPLOAD_SOURCE,
    GrokClient,
    ModeInfo,
    QuotaInfo,
    asset_url,
    parse_imagine_quota,
    parse_mode_limits,
    parse_modes,
    parse_upload_v2,
)
from grok2api.grok.errors import UploadRejected, UpstreamConnectionError, UpstreamHTTPError
from grok2api.grok.events import End, Reasoning, Text
from grok2api.grok.failures import FailureKind, classify
from grok2api.grok.transport import AiohttpTransport
from grok2api.settings import RuntimeSettings

BASE = "http://127.0.0.1:9"
CHAT_URL = f"{BASE}/rest/app-chat/conversations/new"
SETTINGS = RuntimeSettings(upstream_url=BASE, assets_url=f"{BASE}/assets", cf_clearance="cfv")
_enc = msgspec.json.Encoder()


def frame(response: dict[str, Any]) -> bytes:
    return _enc.encode({"result": {"response": response}}) + b"\n"


@pytest.fixture
async def grok() -> AsyncIterator[GrokClient]:
    pool = AiohttpTransport()
    try:
        yield GrokClient(pool)
    finally:
        await pool.close()


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


def sent(m: aioresponses, method: str, url: str) -> list[Any]:
    return m.requests.get((method, URL(url)), [])


async def collect(grok: GrokClient, payload: dict[str, Any] | None = None) -> list[Any]:
    """Every event of one answer, in order (the client may hand them over one by one or in batches)."""
    events: list[Any] = []
    async for item in grok.stream_chat("tok-1", payload or {"message": "hi"}, SETTINGS):
        events.extend(item if isinstance(item, list) else [item])
    return events


async def test_stream_chat_yields_events_and_sends_the_account_cookie(grok: GrokClient, mocked: aioresponses) -> None:
    body = (
        frame({"token": "Hmm", "isThinking": True})
        + b"\n"  # blank line
        + b"not json\n"
        + frame({"token": "Hel", "isThinking": False})
        + frame({"token": "lo", "isThinking": False})
        + frame({"modelResponse": {"message": "Hello", "model": "grok-3"}}).rstrip(b"\n")  # no final newline
    )
    mocked.post(CHAT_URL, status=200, body=body, content_type="application/json")
    events = await collect(grok, {"message": "hi", "modelName": "grok-3"})
    assert events == [Reasoning("Hmm"), Text("Hel"), Text("lo"), End("Hello", "grok-3")]
    (call,) = sent(mocked, "POST", CHAT_URL)
    headers = call.kwargs["headers"]
    assert headers["Cookie"] == "sso-rw=tok-1;sso=tok-1;cf_clearance=cfv"
    assert headers["x-statsig-id"] == SETTINGS.x_statsig_id
    assert headers["Origin"] == BASE
    assert msgspec.json.decode(call.kwargs["data"]) == {"message": "hi", "modelName": "grok-3"}


async def test_stream_chat_reads_sse_framing(grok: GrokClient, mocked: aioresponses) -> None:
    body = b"event: message\ndata: " + frame({"token": "a"}) + b"\ndata: " + frame({"token": "b"}) + b"\ndata: [DONE]\n"
    mocked.post(CHAT_URL, status=200, body=body, content_type="text/event-stream")
    assert await collect(grok) == [Text("a"), Text("b")]


@pytest.mark.parametrize(
    ("status", "headers", "body", "retry_after"),
    [
        (429, {"Retry-After": "42"}, '{"error":{"code":8,"message":"Too many requests"}}', 42.0),
        (429, {"Retry-After": "soon"}, '{"error":{"code":8}}', None),
        (401, {}, '{"error":{"code":16,"message":"invalid-credentials"}}', None),
        (503, {}, "<html>Service Unavailable</html>", None),
    ],
)
async def test_non_200_raises_http_error(
    grok: GrokClient, mocked: aioresponses, status: int, headers: dict[str, str], body: str, retry_after: float | None
) -> None:
    mocked.post(CHAT_URL, status=status, body=body, headers=headers)
    with pytest.raises(UpstreamHTTPError) as info:
        await collect(grok)
    assert info.value.status == status
    assert info.value.body == body
    assert info.value.retry_after == retry_after
    assert f"HTTP {status}" in str(info.value)


async def test_connection_failure_raises_connection_error(grok: GrokClient, mocked: aioresponses) -> None:
    mocked.post(CHAT_URL, exception=aiohttp.ClientConnectionError("refused"))
    with pytest.raises(UpstreamConnectionError, match="^the connection to grok.com failed$"):
        await collect(grok)


async def test_rate_limits_both_shapes(grok: GrokClient, mocked: aioresponses) -> None:
    """grok.com's per-mode window, with room and empty, asked by a model (its mode) or by a mode id. The 2025
    token keys that may ride along (``remainingTokens``, ``*EffortRateLimits``) are not the window."""
    url = f"{BASE}/rest/rate-limits"
    with_room = {
        "windowSizeSeconds": 7200,
        "remainingQueries": 47,
        "totalQueries": 50,
        "remainingTokens": 60,
        "totalTokens": 80,
        "lowEffortRateLimits": {"cost": 1, "remainingQueries": 60},
    }
    empty = {"windowSizeSeconds": 7200, "remainingQueries": 0, "totalQueries": 20, "waitTimeSeconds": 5400}
    mocked.post(url, payload=with_room)
    mocked.post(url, payload=empty)
    mocked.post(url, payload=with_room)
    auto = await grok.rate_limits("tok-1", MODELS["grok-4-fast"], SETTINGS)  # an alias of grok-auto
    assert auto == QuotaInfo(47, 50, 7200, None)
    heavy = await grok.rate_limits("tok-1", MODELS["grok-4-heavy"], SETTINGS)
    assert heavy == QuotaInfo(0, 20, 7200, 5400.0)
    assert await grok.rate_limits("tok-1", "grok-420-computer-use-sa", SETTINGS) == auto  # any mode id
    calls = sent(mocked, "POST", url)
    assert [msgspec.json.decode(c.kwargs["data"]) for c in calls] == [
        {"modelName": "auto"},
        {"modelName": "heavy"},
        {"modelName": "grok-420-computer-use-sa"},
    ]
    headers = calls[0].kwargs["headers"]
    assert headers["x-statsig-id"] == SETTINGS.x_statsig_id and "sso=tok-1" in headers["Cookie"]


async def test_rate_limits_of_a_mode(grok: GrokClient, mocked: aioresponses) -> None:
    url = f"{BASE}/rest/rate-limits"
    mocked.post(url, payload={"windowSizeSeconds": 7200.0, "remainingQueries": 49.0, "totalQueries": 50})
    mocked.post(
        url, payload={"remainingQueries": 0, "totalQueries": 20, "remainingTokens": 80, "waitTimeSeconds": 3600.5}
    )
    assert await grok.rate_limits("tok-1", "expert", SETTINGS) == QuotaInfo(49, 50, 7200, None)
    assert await grok.rate_limits("tok-1", "heavy", SETTINGS) == QuotaInfo(0, 20, None, 3600.5)
    bodies = [msgspec.json.decode(c.kwargs["data"]) for c in sent(mocked, "POST", url)]
    assert bodies == [{"modelName": "expert"}, {"modelName": "heavy"}]


def test_parse_mode_limits_edge_cases() -> None:
    nested = {
        "remainingQueries": 0,
        "totalQueries": 0,
        "remainingTokens": 0,
        "totalTokens": 80,
        "lowEffortRateLimits": {"cost": 1, "remainingQueries": 0, "waitTimeSeconds": 321},
    }
    info = parse_mode_limits(nested)
    assert (info.remaining, info.total, info.wait_seconds) == (0, 0, 321.0)  # queries, never tokens
    assert parse_mode_limits({"remainingQueries": True, "waitTimeSeconds": 5}).remaining is None
    assert parse_mode_limits({"waitTimeSeconds": 5}).wait_seconds == 5.0
    assert parse_mode_limits(["not", "an", "object"]) == QuotaInfo(None, None, None, None)


V2_URL = f"{BASE}/http/upload-file-v2/direct"
LEGACY_URL = f"{BASE}/rest/app-chat/upload-file"
V2_ANSWER = {
    "uploadId": "up-1",
    "fileMetadata": {"fileMetadataId": "f1", "fileId": "blob-1", "fileUri": "users/u/f1/content"},
    "terminalError": None,
}


def form_fields(call: Any) -> dict[str, tuple[str | None, str | None, Any]]:
    """The multipart fields aiohttp was asked to send: name -> (filename, content type, value)."""
    form: aiohttp.FormData = call.kwargs["data"]
    return {
        opts["name"]: (opts.get("filename"), headers.get("Content-Type"), value)
        for opts, headers, value in form._fields
    }


async def test_upload_v2_sends_the_file_as_multipart(grok: GrokClient, mocked: aioresponses) -> None:
    mocked.post(V2_URL, payload=V2_ANSWER, repeat=True)
    assert await grok.upload("tok-1", "a.png", "image/png", "AAAA", SETTINGS) == ("f1", "users/u/f1/content")
    assert await grok.upload("tok-1", "b.jpg", "image/jpeg", "AAAA", SETTINGS, source=IMAGINE_UPLOAD_SOURCE)
    chat, edit = sent(mocked, "POST", V2_URL)
    assert form_fields(chat) == {"file": ("a.png", "image/png", b"\x00\x00\x00")}
    assert form_fields(edit)["file_source"] == (None, None, "IMAGINE_SELF_UPLOAD_FILE_SOURCE")
    for call, referer in ((chat, f"{BASE}/"), (edit, f"{BASE}/imagine")):
        headers = call.kwargs["headers"]
        assert "x-xai-request-id" not in headers and "Content-Type" not in headers  # aiohttp sets the boundary
        assert headers["Referer"] == referer and "sso=tok-1" in headers["Cookie"]
    assert not sent(mocked, "POST", LEGACY_URL)


@pytest.mark.parametrize(
    ("terminal", "reason"),
    [
        ("Image dimensions are insufficient", "Image dimensions are insufficient"),
        ({"code": 3, "message": "Image dimensions are insufficient"}, "Image dimensions are insufficient"),
        ({"error": {"reason": "unsupported format"}}, "unsupported format"),
        ({"code": 13}, '{"code":13}'),
    ],
)
def test_a_terminal_error_rejects_the_file(terminal: Any, reason: str) -> None:
    with pytest.raises(UploadRejected) as info:
        parse_upload_v2({**V2_ANSWER, "fileMetadata": None, "terminalError": terminal})
    assert info.value.reason == reason


def test_upload_v2_answers_without_an_id_are_upstream_errors() -> None:
    empty: Any
    for empty in (None, "", False, {}, []):
        assert parse_upload_v2({**V2_ANSWER, "terminalError": empty}) == ("f1", "users/u/f1/content")
    # fileMetadataId first; the others stand in for it
    assert parse_upload_v2({"fileMetadata": {"fileId": "b2"}, "uploadId": "u2"}) == ("b2", "")
    assert parse_upload_v2({"uploadId": "u2"}) == ("u2", "")
    for bad in ({"fileMetadata": {"fileUri": "x"}}, ["not", "an", "object"]):
        with pytest.raises(UpstreamHTTPError):
            parse_upload_v2(bad)


@pytest.mark.parametrize("status", [404, 405, 410, 501])
async def test_the_legacy_upload_stands_in_only_when_v2_is_missing(
    grok: GrokClient, mocked: aioresponses, status: int
) -> None:
    mocked.post(V2_URL, status=status, body="Not Found")
    mocked.post(LEGACY_URL, payload={"fileMetadataId": "f1", "fileUri": "users/u/f1/content"})
    assert await grok.upload("tok-1", "a.png", "image/png", "AAAA", SETTINGS) == ("f1", "users/u/f1/content")
    (call,) = sent(mocked, "POST", LEGACY_URL)
    assert call.kwargs["headers"]["Content-Type"] == "text/plain;charset=UTF-8"
    assert msgspec.json.decode(call.kwargs["data"]) == {
        "fileName": "a.png",
        "fileMimeType": "image/png",
        "content": "AAAA",
    }


async def test_other_v2_failures_are_not_retried_on_the_legacy_upload(grok: GrokClient, mocked: aioresponses) -> None:
    mocked.post(V2_URL, status=500, body="boom")
    mocked.post(V2_URL, status=403, body='{"error":{"code":7,"message":"Request rejected by anti-bot rules."}}')
    with pytest.raises(UpstreamHTTPError) as info:
        await grok.upload("tok-1", "a.png", "image/png", "AAAA", SETTINGS)
    assert info.value.status == 500
    with pytest.raises(UpstreamHTTPError) as info:
        await grok.upload("tok-1", "a.png", "image/png", "AAAA", SETTINGS)
    assert classify(info.value).kind == FailureKind.EGRESS
    assert not sent(mocked, "POST", LEGACY_URL)


async def test_legacy_upload_without_an_id_and_media_post(grok: GrokClient, mocked: aioresponses) -> None:
    mocked.post(V2_URL, status=404, body="Not Found")
    mocked.post(LEGACY_URL, payload={"fileUri": "no id"})
    with pytest.raises(UpstreamHTTPError, match="fileMetadataId"):
        await grok.upload("tok-1", "a.png", "image/png", "AAAA", SETTINGS)


async def test_side_calls_map_failures(grok: GrokClient, mocked: aioresponses) -> None:
    url = f"{BASE}/rest/rate-limits"
    mocked.post(url, status=403, body='{"error":{"code":7,"message":"Request rejected by anti-bot rules."}}')
    mocked.post(url, exception=aiohttp.ServerDisconnectedError())
    with pytest.raises(UpstreamHTTPError) as info:
        await grok.rate_limits("tok-1", MODELS["grok-3-fast"], SETTINGS)
    assert info.value.status == 403 and "anti-bot" in info.value.body
    with pytest.raises(UpstreamConnectionError, match="^grok.com closed the connection$"):
        await grok.rate_limits("tok-1", MODELS["grok-3-fast"], SETTINGS)


async def test_download(grok: GrokClient, mocked: aioresponses) -> None:
    asset = f"{BASE}/assets/users/u/generated/a/image.jpg"
    mocked.get(asset, body=b"\xff\xd8\xffjpeg", content_type="image/jpeg")
    mocked.get(asset, status=404, body="Not Found")
    mocked.get(asset, body=b"x" * 100, content_type="image/jpeg")
    data, ctype = await grok.download("tok-1", "/users/u/generated/a/image.jpg", SETTINGS)
    assert (data, ctype) == (b"\xff\xd8\xffjpeg", "image/jpeg")
    (call, *_) = sent(mocked, "GET", asset)
    assert call.kwargs["headers"]["Cookie"].startswith("sso-rw=tok-1;sso=tok-1")
    with pytest.raises(UpstreamHTTPError) as info:
        await grok.download("tok-1", "users/u/generated/a/image.jpg", SETTINGS)
    assert info.value.status == 404
    with pytest.raises(UpstreamHTTPError) as info:
        await grok.download("tok-1", asset, SETTINGS, max_bytes=10)
    assert info.value.status == 413


async def test_assets_come_only_from_asset_hosts(grok: GrokClient, mocked: aioresponses) -> None:
    public = "https://imagine-public.x.ai/imagine-public/images/i1.jpg"
    mocked.get(public, body=b"\xff\xd8\xffjpeg", content_type="image/jpeg")
    assert (await grok.download("tok-1", public, SETTINGS))[0] == b"\xff\xd8\xffjpeg"
    refused = ("https://evil.example/i.jpg", "http://127.0.0.1:80/i.jpg", "https://imgen.x.ai.evil/i.jpg")
    for elsewhere in (*refused, "http://imgen.x.ai/i.jpg", "https://imgen.x.ai:8443/i.jpg"):
        with pytest.raises(UpstreamHTTPError) as info:
            await grok.download("tok-1", elsewhere, SETTINGS)
        assert info.value.status == 403 and "asset_hosts" in info.value.body
    assert asset_url("users/u/i.jpg", SETTINGS) == f"{BASE}/assets/users/u/i.jpg"
    assert asset_url(f"{BASE}/elsewhere/i.jpg", SETTINGS).startswith(BASE)  # the configured hosts themselves
    own = RuntimeSettings(asset_hosts="cdn.example")
    assert asset_url("https://CDN.example/i.jpg", own) == "https://CDN.example/i.jpg"
    with pytest.raises(UpstreamHTTPError):
        asset_url("https://imgen.x.ai/i.jpg", own)


def test_parse_imagine_quota() -> None:
    now = time.time()
    parsed = parse_imagine_quota(
        {
            "image": {"available": True, "remainingQueries": 37, "windowSizeSeconds": 86400},
            "imagePro": None,  # the tier has none
            "imageEdit": {"available": False, "remainingQueries": 0},  # not for this account
            "video": {"available": False, "remainingQueries": 0, "nextAvailableAt": int((now + 600) * 1000)},
            "video720p": {"available": False, "nextAvailableAt": "2999-01-01T00:00:00Z"},
            "future": "odd",  # not an object: skipped
        }
    )
    assert parsed["image"] == QuotaInfo(37, None, 86400, None)
    assert parsed["imagePro"] == QuotaInfo(0, 0, None, None)
    assert parsed["imageEdit"] == QuotaInfo(0, 0, None, None)
    video = parsed["video"]
    assert video.remaining == 0 and video.wait_seconds is not None and 590 < video.wait_seconds <= 600
    assert parsed["video720p"].wait_seconds is not None and parsed["video720p"].wait_seconds > 10**8
    assert "future" not in parsed
    assert parse_imagine_quota(None) == {}


async def test_http_pool_reuses_one_session_and_passes_http_proxies() -> None:
    pool = AiohttpTransport()
    try:
        plain, proxy = pool.session("")
        again, via = pool.session("http://127.0.0.1:3128")
        assert plain is again
        assert (proxy, via) == (None, "http://127.0.0.1:3128")
    finally:
        await pool.close()
    assert plain.closed


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (TimeoutError(), "grok.com did not answer in time"),
        (aiohttp.ServerDisconnectedError(), "grok.com closed the connection"),
        (aiohttp.ClientPayloadError("<TransferEncodingError: 400>"), "grok.com's answer was cut off"),
        (ConnectionResetError(104, "reset"), "grok.com closed the connection"),
    ],
)
def test_transport_errors_read_as_plain_sentences(exc: BaseException, text: str) -> None:
    from grok2api.grok.transport import describe_connection_error

    message = describe_connection_error(exc)
    assert message == text and "<" not in message and "Error" not in message


SESSION_URL = f"{BASE}/api/auth/session"


async def test_auth_session_returns_the_user_id(grok: GrokClient, mocked: aioresponses) -> None:
    mocked.get(
        SESSION_URL,
        payload={"status": "authenticated", "session": {"userId": "u-1", "email": "a@b.c", "organizationId": "o"}},
    )
    mocked.get(SESSION_URL, payload={"user": {"id": "u-2"}})
    assert await grok.auth_session("tok-1", SETTINGS) == "u-1"
    assert await grok.auth_session("tok-1", SETTINGS) == "u-2"
    call, _ = sent(mocked, "GET", SESSION_URL)
    headers = call.kwargs["headers"]
    assert headers["Cookie"].startswith("sso-rw=tok-1;sso=tok-1") and "Content-Type" not in headers
    assert call.kwargs["data"] is None


@pytest.mark.parametrize(
    ("status", "payload", "kind"),
    [
        (200, {"status": "unauthenticated"}, FailureKind.INVALID),
        (200, {"status": "blocked", "session": {"userId": "u-1"}}, FailureKind.BLOCKED),
        (200, {"status": "authenticated", "session": {}}, FailureKind.SERVER),
        (200, {}, FailureKind.SERVER),
        (401, {"error": "unauthorized"}, FailureKind.INVALID),
    ],
)
async def test_auth_session_failures_classify(
    grok: GrokClient, mocked: aioresponses, status: int, payload: dict[str, Any], kind: FailureKind
) -> None:
    mocked.get(SESSION_URL, status=status, payload=payload)
    with pytest.raises(UpstreamHTTPError) as info:
        await grok.auth_session("tok-1", SETTINGS)
    assert classify(info.value).kind == kind


async def test_modes(grok: GrokClient, mocked: aioresponses) -> None:
    url = f"{BASE}/rest/modes"
    mocked.post(
        url,
        payload={
            "modes": [
                {"id": "fast", "title": "Fast", "description": "Quick answers", "availability": "available"},
                {"id": "heavy", "title": "Heavy", "availability": {"requiresUpgrade": {}}, "badgeText": "New"},
                {"id": "grok-420-computer-use-sa", "availability": {"status": "comingSoon"}, "tags": ["beta"]},
            ],
            "defaultModeId": "fast",
        },
    )
    modes = await grok.modes("tok-1", SETTINGS)
    assert modes == [
        ModeInfo(id="fast", title="Fast", description="Quick answers", default=True),
        ModeInfo(id="heavy", title="Heavy", availability="requiresUpgrade"),
        ModeInfo(id="grok-420-computer-use-sa", title="grok-420-computer-use-sa", availability="comingSoon"),
    ]
    assert [m.available for m in modes] == [True, False, False]
    (call,) = sent(mocked, "POST", url)
    assert msgspec.json.decode(call.kwargs["data"]) == {"locale": "en"}
    assert call.kwargs["headers"]["x-statsig-id"]


def test_parse_modes_is_tolerant() -> None:
    assert parse_modes(None) == [] and parse_modes({"modes": "x"}) == []
    odd = parse_modes([{"id": "auto", "availability": "AVAILABILITY_AVAILABLE"}, {"id": 3}, "x", {"title": "no id"}])
    assert odd == [ModeInfo(id="auto", title="auto", availability="AVAILABLE")] and odd[0].available

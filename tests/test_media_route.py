from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from yarl import URL

from grok2api.store.base import MediaEntry
from grok2api.testing.fake_grok import TINY_JPEG, TINY_MP4, FakeGrok

from harness import LiveGateway

TOKEN = "route-owner"
SECRET = b"top secret, never served"


async def _indexed_asset(fake: FakeGrok, gateway: LiveGateway, file: str = "image.jpg") -> str:
    """An asset known to the media index but not cached yet; returns its public name."""
    account = fake.add_account(TOKEN)
    path = f"users/{account.user_id}/generated/{fake.new_id()}/{file}"
    fake._register_asset(path, TOKEN)
    return await gateway.services.media.remember(path, TOKEN)


async def _request(gateway: LiveGateway, raw_path: str, method: str = "GET", **kw: Any) -> tuple[int, bytes, Any]:
    async with aiohttp.ClientSession() as http:
        url = URL(gateway.url + raw_path, encoded=True)  # sent exactly as written, no normalising
        async with http.request(method, url, **kw) as resp:
            return resp.status, await resp.read(), resp.headers


async def test_serves_cached_media_with_cache_headers(fake: FakeGrok, gateway: LiveGateway) -> None:
    name = await _indexed_asset(fake, gateway)
    status, body, headers = await _request(gateway, f"/images/{name}")
    assert status == 200 and body == TINY_JPEG
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == "public, max-age=86400"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["ETag"] and headers["Last-Modified"]
    status, body, headers = await _request(gateway, f"/images/{name}", "HEAD")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(TINY_JPEG))


async def test_cache_miss_is_refetched_through_the_media_index(fake: FakeGrok, gateway: LiveGateway) -> None:
    name = await _indexed_asset(fake, gateway)
    assert (await _request(gateway, f"/images/{name}"))[0] == 200
    cached = gateway.services.media.path_for(name)
    assert cached is not None and cached.exists()
    cached.unlink()  # another replica's link, or a cleared cache
    status, body, _ = await _request(gateway, f"/images/{name}")
    assert status == 200 and body == TINY_JPEG
    assert cached.read_bytes() == TINY_JPEG
    asset_gets = [r for r in fake.requests if r.path.startswith("/assets/")]
    assert len(asset_gets) == 2 and all(r.token == TOKEN for r in asset_gets)


async def test_unknown_name_is_a_404_in_the_openai_envelope(gateway: LiveGateway) -> None:
    status, body, headers = await _request(gateway, "/images/users-nobody-generated-x-image.jpg")
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert b'"error"' in body and b'"not_found"' in body


async def test_upstream_gone_is_404_and_unreachable_is_502(fake: FakeGrok, gateway: LiveGateway) -> None:
    name = await _indexed_asset(fake, gateway)
    fake.push_fault("asset-404")
    assert (await _request(gateway, f"/images/{name}"))[0] == 404
    fake.push_fault("asset-503")
    status, body, _ = await _request(gateway, f"/images/{name}")
    assert status == 502 and b"try again" in body
    assert (await _request(gateway, f"/images/{name}"))[0] == 200  # nothing bad was cached


async def test_video_answers_range_requests(fake: FakeGrok, gateway: LiveGateway) -> None:
    name = await _indexed_asset(fake, gateway, "generated_video.mp4")
    status, body, headers = await _request(gateway, f"/images/{name}", headers={"Range": "bytes=4-11"})
    assert status == 206
    assert body == TINY_MP4[4:12] == b"ftypisom"
    assert headers["Content-Range"] == f"bytes 4-11/{len(TINY_MP4)}"
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize(
    "raw",
    [
        "/images/..%2Fsecret.txt",
        "/images/..%2F..%2Fdata%2Fsecret.txt",
        "/images/%2e%2e%2fsecret.txt",
        "/images/..%5Csecret.txt",
        "/images/..\\secret.txt",
        "/images/images%2F..%2F..%2Fsecret.txt",
        "/images/.hidden.jpg",
        "/images/%2Ehidden.jpg",
        "/images/..",
        "/images/.",
        "/images/%00secret.txt",
    ],
)
async def test_names_cannot_leave_the_cache(gateway: LiveGateway, raw: str) -> None:
    data = gateway.boot.data_dir
    (data / "secret.txt").write_bytes(SECRET)
    (data / "images").mkdir(exist_ok=True)
    (data / "images" / ".hidden.jpg").write_bytes(SECRET)
    await gateway.services.store.put_media(
        # Even a poisoned index entry under a dotted name must not be fetched or served.
        MediaEntry(name=".hidden.jpg", kind="image", upstream_path="x", account_token="t")
    )
    status, body, _ = await _request(gateway, raw)
    assert status == 404
    assert SECRET not in body

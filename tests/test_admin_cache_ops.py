from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from grok2api.admin.cache_ops import cache_size, clear_cache, human_size
from grok2api.grok.client import GrokClient
from grok2api.grok.transport import AiohttpTransport
from grok2api.media.service import MediaService
from grok2api.testing.fake_grok import TINY_JPEG, FakeGrok

from harness import LiveGateway, StoreFactory


@pytest.fixture
async def media(tmp_path: Path, store_factory: StoreFactory) -> AsyncIterator[MediaService]:
    http = AiohttpTransport()
    service = MediaService(tmp_path / "data", await store_factory("sqlite"), GrokClient(http))
    try:
        yield service
    finally:
        await http.close()


async def _fill(media: MediaService) -> None:
    await media.cache.write("a.jpg", bytes(1024))
    await media.cache.write("b.png", bytes(2048))
    await media.cache.write("c.mp4", bytes(3 * 1024 * 1024))


def test_human_size() -> None:
    assert human_size(0) == "0.0 KB"
    assert human_size(1536) == "1.5 KB"
    assert human_size(5 * 1024 * 1024 + 512 * 1024) == "5.5 MB"


async def test_size_in_the_reference_shape(media: MediaService) -> None:
    assert (await cache_size(media))["data"]["total_size_bytes"] == 0
    await _fill(media)
    assert await cache_size(media) == {
        "success": True,
        "data": {
            "image_size": "3.0 KB",
            "video_size": "3.0 MB",
            "total_size": "3.0 MB",
            "image_size_bytes": 3072,
            "video_size_bytes": 3 * 1024 * 1024,
            "total_size_bytes": 3072 + 3 * 1024 * 1024,
        },
    }


async def test_clear_one_kind(media: MediaService) -> None:
    await _fill(media)
    images = await clear_cache(media, "images")
    assert images["success"] is True and images["message"]
    assert images["data"] == {"deleted_count": 2, "type": "images"}
    assert (await cache_size(media))["data"]["video_size_bytes"] == 3 * 1024 * 1024
    videos = await clear_cache(media, "videos")
    assert videos["data"] == {"deleted_count": 1, "type": "videos"}
    assert (await cache_size(media))["data"]["total_size_bytes"] == 0


async def test_clear_all(media: MediaService) -> None:
    await _fill(media)
    result = await clear_cache(media, "all")
    assert result["success"] is True
    assert result["data"] == {"deleted_count": 3, "image_count": 2, "video_count": 1}
    assert "2 image(s) and 1 video(s)" in result["message"]
    assert (await clear_cache(media, "all"))["data"]["deleted_count"] == 0


async def test_unknown_kind_is_refused(media: MediaService) -> None:
    with pytest.raises(ValueError, match="images, videos or all"):
        await clear_cache(media, "thumbnails")  # type: ignore[arg-type]


async def test_links_survive_a_cleared_cache(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("cleaner")
    reply = await client.chat.completions.create(
        model="grok-3-fast", messages=[{"role": "user", "content": "[[draw]]"}]
    )
    link = reply.choices[0].message.content.split("](", 1)[1].split(")", 1)[0]
    media = gateway.services.media
    assert (await cache_size(media))["data"]["image_size_bytes"] == 2 * len(TINY_JPEG)
    assert (await clear_cache(media, "all"))["data"]["image_count"] == 2
    async with aiohttp.ClientSession() as http, http.get(gateway.url + link) as resp:
        assert resp.status == 200
        assert await resp.read() == TINY_JPEG  # re-fetched through the media index

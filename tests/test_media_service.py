from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from grok2api.grok.client import GrokClient
from grok2api.grok.errors import UpstreamHTTPError
from grok2api.grok.transport import AiohttpTransport
from grok2api.media.service import MediaService, media_name
from grok2api.settings import RuntimeSettings
from grok2api.store.base import ModeQuota, NewAccount
from grok2api.testing.fake_grok import TINY_JPEG, TINY_MP4, FakeGrok

from harness import LiveGateway, StoreFactory

TOKEN = "media-owner"
LINK = re.compile(r"!\[Generated Image\]\(([^)]+)\)")


def _asset(fake: FakeGrok, token: str, name: str = "image.jpg") -> str:
    """Register a generated asset on the fake, as a finished generation would."""
    account = fake.add_account(token)
    path = f"users/{account.user_id}/generated/{fake.new_id()}/{name}"
    fake._register_asset(path, token)
    return path


def _asset_gets(fake: FakeGrok) -> int:
    return sum(1 for r in fake.requests if r.path.startswith("/assets/"))


@pytest.fixture
async def media(tmp_path: Path, store_factory: StoreFactory) -> AsyncIterator[MediaService]:
    store = await store_factory("sqlite")
    http = AiohttpTransport()
    service = MediaService(tmp_path / "data", store, GrokClient(http))
    try:
        yield service
    finally:
        await service.close()
        await http.close()


def _settings(fake: FakeGrok, **extra: Any) -> RuntimeSettings:
    return RuntimeSettings(upstream_url=fake.base_url, assets_url=fake.assets_url, **extra)


# ---- naming -------------------------------------------------------------------------------------


def test_media_name_joins_segments_like_the_reference() -> None:
    assert media_name("users/u1/generated/i1/image.jpg") == "users-u1-generated-i1-image.jpg"
    assert media_name("/users/u1/generated/v1/generated_video.mp4") == "users-u1-generated-v1-generated_video.mp4"
    assert media_name("https://imagine-public.x.ai/imagine-public/images/abc.png?x=1") == (
        "imagine-public-images-abc.png"
    )


def test_media_name_hashes_unsafe_or_long_paths() -> None:
    odd = media_name("../../etc/passwd")
    assert "/" not in odd and not odd.startswith(".")
    long = media_name("users/" + "x" * 300 + "/clip.MP4")
    assert re.fullmatch(r"[0-9a-f]{40}\.mp4", long)
    assert media_name("users/" + "x" * 300 + "/clip.MP4") == long  # stable
    assert re.fullmatch(r"[0-9a-f]{40}", media_name("users/" + "y" * 300 + "/no-extension"))


# ---- MediaService against the fake assets host ---------------------------------------------------


async def test_concurrent_requests_download_once(fake: FakeGrok, media: MediaService) -> None:
    path = _asset(fake, TOKEN)
    settings = _settings(fake)
    name = await media.remember(path, TOKEN)
    fake.push_fault("asset-slow:0.3")  # keep the first download in flight while the others arrive
    results = await asyncio.gather(*(media.fetch(name, path, TOKEN, settings) for _ in range(8)))
    assert _asset_gets(fake) == 1
    assert {r.path for r in results} == {media.cache.dirs["image"] / name}
    assert results[0].path.read_bytes() == TINY_JPEG
    await media.fetch(name, path, TOKEN, settings)
    assert _asset_gets(fake) == 1  # a hit never goes upstream


async def test_a_waiter_going_away_does_not_cancel_the_download(fake: FakeGrok, media: MediaService) -> None:
    path = _asset(fake, TOKEN)
    settings = _settings(fake)
    name = media_name(path)
    fake.push_fault("asset-slow:0.3")
    first = asyncio.create_task(media.fetch(name, path, TOKEN, settings))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(media.fetch(name, path, TOKEN, settings))
    await asyncio.sleep(0.05)
    first.cancel()
    cached = await second
    assert cached.path.read_bytes() == TINY_JPEG
    assert first.cancelled()


async def test_download_needs_the_owners_cookie(fake: FakeGrok, media: MediaService) -> None:
    path = _asset(fake, TOKEN)
    with pytest.raises(UpstreamHTTPError) as info:
        await media.fetch(media_name(path), path, "someone-else", _settings(fake))
    assert info.value.status == 403
    assert not media.cache.dirs["image"].exists() or not any(media.cache.dirs["image"].iterdir())


async def test_non_media_bytes_are_not_cached(fake: FakeGrok, media: MediaService) -> None:
    account = fake.add_account(TOKEN)
    account.uploads["f1"] = ("image/jpeg", b"<html>login</html>")
    path = f"users/{account.user_id}/f1/content"
    with pytest.raises(UpstreamHTTPError, match="not an image"):
        await media.fetch(media_name(path), path, TOKEN, _settings(fake))
    assert await media.cache.lookup(media_name(path)) is None


async def test_open_refetches_a_miss_through_the_index(fake: FakeGrok, media: MediaService) -> None:
    path = _asset(fake, TOKEN, "generated_video.mp4")
    settings = _settings(fake)
    name = await media.remember(path, TOKEN)
    assert await media.open("users-unknown.jpg", settings) is None
    assert await media.open("../x.jpg", settings) is None
    cached = await media.open(name, settings)
    assert cached is not None and cached.content_type == "video/mp4"
    assert cached.path.parent == media.cache.dirs["video"]
    cached.path.unlink()
    again = await media.open(name, settings)
    assert again is not None and again.path.read_bytes() == TINY_MP4
    assert _asset_gets(fake) == 2


async def test_markdown_in_url_and_base64_modes(fake: FakeGrok, media: MediaService) -> None:
    paths = [_asset(fake, TOKEN), _asset(fake, TOKEN)]
    url_md = await media.image_markdown(paths, TOKEN, _settings(fake, base_url="https://gw.example/"))
    assert LINK.findall(url_md) == [f"https://gw.example/images/{media_name(p)}" for p in paths]
    b64_md = await media.image_markdown(paths[:1], TOKEN, _settings(fake, image_mode="base64"))
    (data_url,) = LINK.findall(b64_md)
    assert data_url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(data_url.split(",", 1)[1]) == TINY_JPEG
    entry = await media.store.get_media(media_name(paths[0]))
    assert entry is not None and entry.upstream_path == paths[0] and entry.account_token == TOKEN


async def test_a_failed_download_still_links_locally(fake: FakeGrok, media: MediaService) -> None:
    path = _asset(fake, TOKEN)
    fake.push_fault("asset-500")
    md = await media.image_markdown([path], TOKEN, _settings(fake, image_mode="base64"))
    assert LINK.findall(md) == [f"/images/{media_name(path)}"]  # served later through the index
    video = _asset(fake, TOKEN, "generated_video.mp4")
    fake.push_fault("asset-502")
    html = await media.video_markdown(video, TOKEN, _settings(fake))
    assert html == f'<video src="/images/{media_name(video)}" controls="controls"></video>\n'


async def test_new_downloads_evict_least_recently_used(fake: FakeGrok, media: MediaService) -> None:
    images = media.cache.dirs["image"]
    images.mkdir(parents=True)
    for i, age in enumerate((200, 100)):
        filler = images / f"filler{i}.jpg"
        filler.write_bytes(bytes(600 * 1024))
        old = time.time() - age
        os.utime(filler, (old, old))
    path = _asset(fake, TOKEN)
    await media.image_markdown([path], TOKEN, _settings(fake, image_cache_max_size_mb=1))
    assert sorted(p.name for p in images.iterdir()) == ["filler1.jpg", media_name(path)]


# ---- image generation through chat, end to end -----------------------------------------------------


async def _add_account(gateway: LiveGateway, fake: FakeGrok, token: str, known_window: bool = True) -> int:
    """Add the account; with ``known_window`` its fast window is seeded with what the fake will report (so
    learning it from grok.com changes nothing). Returns that window's size."""
    window = fake.add_account(token).window("fast")
    total = window.total
    quotas = {"fast": ModeQuota(remaining=total, total=total, window_seconds=window.window_seconds)}
    await gateway.services.store.add_accounts([NewAccount(token=token, quotas=quotas if known_window else None)])
    await gateway.services.reload(force=True)
    return total


async def _remaining(gateway: LiveGateway, token: str, expect: int) -> int | None:
    """The stored quota, waiting briefly: a stream settles its lease just after [DONE]."""
    account = None
    for _ in range(50):
        account = await gateway.services.store.get_account(token)
        if account is not None and account.remaining == expect:
            break
        await asyncio.sleep(0.05)
    return account.remaining if account is not None else None


async def _get(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


async def test_chat_draws_url_mode_with_relative_links(gateway: LiveGateway, client: Any, fake: FakeGrok) -> None:
    total = await _add_account(gateway, fake, TOKEN)
    reply = await client.chat.completions.create(
        model="grok-3-fast", messages=[{"role": "user", "content": "[[draw]] a red fox"}]
    )
    links = LINK.findall(reply.choices[0].message.content)
    assert len(links) == 2
    for link in links:
        assert re.fullmatch(r"/images/users-[0-9a-f-]+-generated-[0-9a-f-]+-image\.jpg", link)
        status, body, ctype = await _get(gateway.url + link)
        assert (status, ctype) == (200, "image/jpeg")
        assert body == TINY_JPEG and body.startswith(b"\xff\xd8\xff") and body.endswith(b"\xff\xd9")
    assert "Generating image 1: 100%" in reply.choices[0].message.reasoning_content
    # One query of the fast window, images included (grok.com's count since 2026; the 2025 budget charged 1 + 4).
    assert fake.account(TOKEN).window("fast").remaining == total - 1
    (session,) = fake.mgw_sessions(TOKEN)
    assert (session.x_grok["enable_image_generation"], session.x_grok["image_generation_count"]) == (True, 2)
    assert await _remaining(gateway, TOKEN, total - 1) == total - 1


async def test_chat_draws_base64_mode_streamed(gateway: LiveGateway, client: Any, fake: FakeGrok) -> None:
    total = await _add_account(gateway, fake, TOKEN)
    await gateway.settings(image_mode="base64")
    stream = await client.chat.completions.create(
        model="grok-3-fast", messages=[{"role": "user", "content": "[[draw]] a red fox"}], stream=True
    )
    content, reasoning, finishes = [], [], []
    async for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content.append(delta.content or "")
        reasoning.append(getattr(delta, "reasoning_content", None) or "")
        finishes.append(chunk.choices[0].finish_reason)
    assert finishes[-1] == "stop"
    links = LINK.findall("".join(content))
    assert len(links) == 2
    for link in links:
        assert link.startswith("data:image/jpeg;base64,")
        assert base64.b64decode(link.split(",", 1)[1]) == TINY_JPEG
    assert "Generating image 2: 50%" in "".join(reasoning)
    assert await _remaining(gateway, TOKEN, total - 1) == total - 1


async def test_chat_draw_stream_ends_with_done(gateway: LiveGateway, fake: FakeGrok) -> None:
    await _add_account(gateway, fake, TOKEN)
    await gateway.settings(base_url="https://gw.example")
    body = {"model": "grok-3-fast", "stream": True, "messages": [{"role": "user", "content": "[[draw]] a fox"}]}
    async with aiohttp.ClientSession() as http, http.post(f"{gateway.url}/v1/chat/completions", json=body) as resp:
        raw = (await resp.read()).decode()
    events = [line[6:] for line in raw.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert '"finish_reason":"stop"' in events[-2]
    assert "](https://gw.example/images/users-" in raw


async def test_moderated_image_is_reported_as_reasoning(gateway: LiveGateway, client: Any, fake: FakeGrok) -> None:
    await _add_account(gateway, fake, TOKEN)
    reply = await client.chat.completions.create(
        model="grok-3-fast", messages=[{"role": "user", "content": "[[draw-moderated]] a fox"}]
    )
    assert len(LINK.findall(reply.choices[0].message.content)) == 1
    assert "Image 2 was moderated" in reply.choices[0].message.reasoning_content


async def test_cache_stays_under_a_tiny_cap_evicting_least_recently_used(
    gateway: LiveGateway, client: Any, fake: FakeGrok
) -> None:
    await _add_account(gateway, fake, TOKEN, known_window=False)
    await gateway.settings(image_cache_max_size_mb=1)
    images = gateway.boot.data_dir / "images"
    images.mkdir(exist_ok=True)

    def filler(name: str, age: float) -> None:
        (images / name).write_bytes(bytes(600 * 1024))
        old = time.time() - age
        os.utime(images / name, (old, old))

    filler("old-but-served.jpg", 300)
    filler("unused.jpg", 200)
    draw = {"role": "user", "content": "[[draw]] a fox"}
    await client.chat.completions.create(model="grok-3-fast", messages=[draw])
    kept = sorted(p.name for p in images.iterdir())
    assert "old-but-served.jpg" not in kept and "unused.jpg" in kept and len(kept) == 3

    # Serving a file makes it recent: the next squeeze drops a newer file that nobody asked for.
    filler("old-but-served.jpg", 300)
    status, _, _ = await _get(f"{gateway.url}/images/old-but-served.jpg")
    assert status == 200
    await client.chat.completions.create(model="grok-3-fast", messages=[draw])
    kept = sorted(p.name for p in images.iterdir())
    assert "old-but-served.jpg" in kept and "unused.jpg" not in kept
    assert sum((images / n).stat().st_size for n in kept) <= 1024 * 1024

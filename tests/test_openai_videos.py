"""OpenAI's Videos API end to end, with the official SDK against the fake grok.com: jobs queued at once and made in
the background, followed, downloaded (ranges too), listed and deleted; one job per Idempotency-Key; longer videos
on super accounts; a job whose worker died finishes on another, charged once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from grok2api.client_keys import hash_key
from grok2api.store.base import AccountPatch, ClientKey, ModeQuota
from grok2api.testing.fake_grok import TINY_JPEG, TINY_MP4, FakeGrok

from harness import LiveGateway, assert_playable_mp4, clean_mysql, drop_redis_prefix, requires

# The SDK marks its Videos methods deprecated (OpenAI's Sora API shuts down); grok2api keeps serving them.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")
Video = Any  # openai.types.Video


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {}


async def _settle(client: openai.AsyncOpenAI, video_id: str, timeout: float = 15) -> Video:
    """Retrieve the job until it is completed or failed."""
    deadline = time.monotonic() + timeout
    while True:
        video = await client.videos.retrieve(video_id)
        if video.status in ("completed", "failed") or time.monotonic() > deadline:
            return video
        await asyncio.sleep(0.05)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


async def test_create_follow_download_list_delete(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    created = await client.videos.create(prompt="a lighthouse at dusk", seconds="4", size="720x1280")
    assert (created.object, created.model, created.status, created.seconds, created.size) == (
        "video",
        "grok-imagine-video",
        "queued",
        "6",  # OpenAI's 4 s are grok.com's shortest, 6 s
        "720x1280",
    )
    assert created.id.startswith("video_") and created.progress == 0 and created.completed_at is None
    done = await client.videos.poll(created.id, poll_interval_ms=50)
    assert (done.status, done.progress, done.error) == ("completed", 100, None)
    assert done.completed_at >= done.created_at

    content = await client.videos.download_content(created.id)
    assert content.content == TINY_MP4 and content.response.headers["content-type"] == "video/mp4"
    assert_playable_mp4(content.content)
    thumbnail = await client.videos.download_content(created.id, variant="thumbnail")
    assert thumbnail.content == TINY_JPEG
    status, part, headers = await _get(f"{gateway.url}/v1/videos/{created.id}/content", {"Range": "bytes=4-11"})
    assert (status, part, headers["Content-Range"]) == (206, TINY_MP4[4:12], f"bytes 4-11/{len(TINY_MP4)}")

    (chat,) = fake.chat_calls()
    assert chat.headers["referer"] == f"{fake.base_url}/imagine"
    assert chat.json["mediaGenInput"] == {
        "textToVideo": {
            "prompt": "a lighthouse at dusk",
            "aspectRatio": "9:16",
            "duration": 6,
            "resolutionName": "720p",
        }
    }

    listed = [v.id async for v in client.videos.list()]
    assert listed == [created.id]
    deleted = await client.videos.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        await client.videos.retrieve(created.id)
    assert [v.id async for v in client.videos.list()] == []


async def test_an_input_image_makes_an_image_to_video_job(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    created = await client.videos.create(
        prompt="the sun rises", size="1280x720", input_reference=("start.jpg", TINY_JPEG, "image/jpeg")
    )
    done = await _settle(client, created.id)
    assert (done.status, done.size) == ("completed", "1280x720")
    (chat,) = fake.chat_calls()
    media = chat.json["mediaGenInput"]["imageToVideo"]
    (asset,) = media["inputAssets"]
    assert fake.account("director").uploads[asset] == ("image/jpeg", TINY_JPEG)
    assert (media["aspectRatio"], media["duration"], media["mode"]) == ("16:9", 6, "custom")


async def test_json_with_grok_durations_runs_long_videos_on_super_accounts(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    await gateway.add_accounts("basic-1")
    async with aiohttp.ClientSession() as http:
        body = {"prompt": "waves", "seconds": 10, "size": "1024x1024"}
        async with http.post(f"{gateway.url}/v1/videos", json=body) as resp:
            error = await resp.json()
    assert resp.status == 400 and error["error"]["param"] == "seconds"
    assert "super or heavy" in error["error"]["message"]

    await gateway.add_accounts("super-1", tier="super")
    async with aiohttp.ClientSession() as http, http.post(f"{gateway.url}/v1/videos", json=body) as resp:
        created = await resp.json()
    assert (created["seconds"], created["size"], created["model"]) == ("10", "720x720", "grok-imagine-video")
    assert (await _settle(client, created["id"])).status == "completed"
    (video,) = fake.delivered_videos()
    assert (video.token, video.order.duration, video.order.aspect_ratio) == ("super-1", 10, "1:1")
    short = await client.videos.create(prompt="ripples", seconds="6", model="sora-2")
    assert (await _settle(client, short.id)).model == "sora-2"
    assert fake.videos[-1].token == "basic-1"  # a 6 s video takes the lowest tier that makes it


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"seconds": "16"}, "seconds"),
        ({"seconds": "soon"}, "seconds"),
        ({"size": "big"}, "size"),
        ({"model": "grok-fast"}, "model"),
        ({"model": "nope"}, "model"),
        ({"input_reference": {"file_id": "file-1"}}, "input_reference"),
        ({"input_reference": "data:image/png;base64,"}, "input_reference"),  # an image that is not one
        ({"prompt": " "}, "prompt"),
    ],
)
async def test_bad_requests_name_their_field(gateway: LiveGateway, fields: dict[str, Any], param: str) -> None:
    await gateway.add_accounts("director")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/v1/videos", json={"prompt": "x", **fields}) as resp:
            error = await resp.json()
    assert resp.status in (400, 404) and error["error"]["param"] == param, error


async def test_a_multipart_prompt_holding_a_lone_surrogate_is_a_400(gateway: LiveGateway) -> None:
    """Starlette decodes multipart fields with the charset the request names; UTF-7 can spell a lone surrogate."""
    await gateway.add_accounts("director")
    boundary = "video-boundary-77"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nwaves +2AA-\r\n--{boundary}--\r\n'
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}; charset=utf-7"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/v1/videos", data=body.encode(), headers=headers) as resp:
            error = (await resp.json())["error"]
    assert resp.status == 400 and error["code"] == "invalid_encoding", error
    assert await gateway.services.store.list_video_jobs("") == ([], False)


async def test_a_moderated_video_fails_with_content_policy_violation(gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    created = await client.videos.create(prompt="[[video-moderated]] dance")
    failed = await _settle(client, created.id)
    assert failed.status == "failed" and failed.error.code == "content_policy_violation"
    assert "moderated" in failed.error.message
    with pytest.raises(openai.BadRequestError, match="not ready"):
        await client.videos.download_content(created.id)


async def test_the_same_idempotency_key_twice_at_once_is_one_job(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    await gateway.add_accounts("director")

    async def create() -> Video:
        return await client.videos.create(prompt="one sunrise", extra_headers={"Idempotency-Key": "sunrise-1"})

    first, second = await asyncio.gather(create(), create())
    assert first.id == second.id
    assert (await _settle(client, first.id)).status == "completed"
    again = await create()
    assert (again.id, again.status) == (first.id, "completed")
    other = await client.videos.create(prompt="one sunrise", extra_headers={"Idempotency-Key": "sunrise-2"})
    assert other.id != first.id
    await _settle(client, other.id)
    assert len(fake.chat_calls()) == 2 and len(fake.delivered_videos()) == 2


async def test_jobs_belong_to_the_client_key_that_made_them(gateway: LiveGateway) -> None:
    await gateway.add_accounts("director")
    for name in ("alice", "bob"):
        key = ClientKey(id=f"key-{name}", name=name, key_hash=hash_key(f"sk-{name}"), prefix="sk-")
        await gateway.services.store.put_client_key(key)
    await gateway.services.load_keys()
    alice = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="sk-alice", max_retries=0)
    bob = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="sk-bob", max_retries=0)
    try:
        created = await alice.videos.create(prompt="mine", extra_headers={"Idempotency-Key": "k"})
        theirs = await bob.videos.create(prompt="theirs", extra_headers={"Idempotency-Key": "k"})
        assert theirs.id != created.id  # the same key of another client is another job
        with pytest.raises(openai.NotFoundError):
            await bob.videos.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            await bob.videos.delete(created.id)
        assert [v.id async for v in alice.videos.list()] == [created.id]
        assert [v.id async for v in bob.videos.list()] == [theirs.id]
    finally:
        await alice.close()
        await bob.close()


async def test_listing_pages_through_every_job(gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    gateway.services.videos.max_running = 0  # keep them queued: listing does not need them made
    ids = [(await client.videos.create(prompt=f"clip {i}")).id for i in range(5)]
    page = await client.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[::-1][:2] and page.has_more
    assert [v.id async for v in client.videos.list(limit=2)] == ids[::-1]
    assert [v.id async for v in client.videos.list(limit=2, order="asc")] == ids


# -- a worker that dies mid-job -----------------------------------------------------------------------------


async def _shared_backend(kind: str, tmp_path: Path) -> tuple[str, str]:
    if kind == "sqlite":
        return "file", f"sqlite:///{tmp_path / 'shared.db'}"
    url = requires("mysql" if kind == "mysql" else "redis")
    if kind == "mysql":
        await clean_mysql(url)
    else:
        await drop_redis_prefix(url, "g2a")  # the prefix a gateway uses by default
    return kind, url


@pytest.fixture
async def two_gateways(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeGrok) -> AsyncIterator[list[Any]]:
    mode, url = await _shared_backend(request.param, tmp_path)
    nodes = [
        LiveGateway(tmp_path / f"node{i}", fake.base_url, fake.assets_url, storage_mode=mode, database_url=url)
        for i in range(2)
    ]
    for node in nodes:
        await node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


@pytest.mark.parametrize(
    "two_gateways",
    [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ],
    indirect=True,
)
async def test_a_job_whose_worker_died_completes_elsewhere_charged_once(fake: FakeGrok, two_gateways: Any) -> None:
    first, second = two_gateways
    await second.services.videos.stop()  # only the first makes videos for now
    await first.add_accounts("director")
    await first.services.store.update_account(
        "director", AccountPatch(quotas={"imagine-video": ModeQuota(remaining=10)})
    )
    for node in (first, second):
        await node.services.reload(force=True)
    first.services.videos.lease_seconds = 1.0
    fake.push_fault("stall-mid:30")  # the first call stalls at 25 %, as if the worker were stuck making it
    sdk = [openai.AsyncOpenAI(base_url=f"{node.url}/v1", api_key="x", max_retries=0) for node in two_gateways]
    try:
        created = await sdk[0].videos.create(prompt="a comet")

        async def running() -> bool:
            video = await sdk[1].videos.retrieve(created.id)  # any replica answers for any job
            return bool(video.status == "in_progress" and video.progress > 0)

        await _until(running)
        await first.services.videos.stop(handover=False)  # the worker dies mid-job: nothing is written for it
        second.services.videos.start()
        done = await _settle(sdk[1], created.id, timeout=20)
        assert (done.status, done.progress) == ("completed", 100)
        assert (await sdk[0].videos.download_content(created.id)).content == TINY_MP4

        job = await second.services.store.get_video_job(created.id)
        assert job is not None and (job.attempt, job.upstream_accepted) == (2, True)
        assert job.lease_owner == second.services.videos.owner
        (account,) = await second.services.store.list_accounts()
        assert job.account_id == account.id
        assert account.quotas["imagine-video"].remaining == 9  # one query for the job, across both attempts
        assert len(fake.chat_calls()) == 2  # the first was cut off ...
        assert len(fake.delivered_videos()) == 1  # ... and exactly one generation succeeded
    finally:
        for client in sdk:
            await client.close()

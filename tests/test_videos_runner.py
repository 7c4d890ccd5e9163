"""The runner of each process: it stops a job it no longer holds, hands its jobs over when it stops, and gives up
on a job whose workers keep dying."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {}


async def _until_status(client: Any, video_id: str, *statuses: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        video = await client.videos.retrieve(video_id)
        if video.status in statuses and (video.status != "in_progress" or video.progress > 0):
            return video
        assert time.monotonic() < deadline, video
        await asyncio.sleep(0.05)


async def test_a_deleted_job_stops_its_worker(fake: FakeGrok, gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    runner = gateway.services.videos
    runner.lease_seconds = 0.6  # renewed every 0.2 s: the renewal finds the job gone
    fake.push_fault("stall-mid:30")
    created = await client.videos.create(prompt="a long take")
    await _until_status(client, created.id, "in_progress")
    assert fake.account("director").in_flight == 1
    await client.videos.delete(created.id)
    deadline = time.monotonic() + 5
    while fake.account("director").in_flight or runner.running:
        assert time.monotonic() < deadline, "the worker kept the call to grok.com open"
        await asyncio.sleep(0.05)
    assert fake.delivered_videos() == []


@pytest.fixture
async def pair(tmp_path: Path, fake: FakeGrok) -> AsyncIterator[list[LiveGateway]]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    nodes = [LiveGateway(tmp_path / f"node{i}", fake.base_url, fake.assets_url, database_url=url) for i in range(2)]
    for node in nodes:
        await node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


async def test_a_stopping_runner_hands_its_jobs_over_at_once(fake: FakeGrok, pair: list[LiveGateway]) -> None:
    first, second = pair
    await second.services.videos.stop()
    await first.add_accounts("director")
    await second.services.reload(force=True)
    fake.push_fault("stall-mid:30")
    sdk = openai.AsyncOpenAI(base_url=f"{second.url}/v1", api_key="x", max_retries=0)
    try:
        created = await sdk.videos.create(prompt="a relay")
        first.services.videos.wake()
        await _until_status(sdk, created.id, "in_progress")
        await first.services.videos.stop()  # e.g. a rolling restart; the lease would hold for another minute
        second.services.videos.start()
        started = time.monotonic()
        done = await _until_status(sdk, created.id, "completed", "failed")
        assert done.status == "completed" and time.monotonic() - started < 5
        job = await second.services.store.get_video_job(created.id)
        assert job is not None and (job.attempt, job.lease_owner) == (2, second.services.videos.owner)
    finally:
        await sdk.close()


async def test_a_job_whose_workers_keep_dying_is_given_up(gateway: LiveGateway, client: Any) -> None:
    await gateway.add_accounts("director")
    runner, store = gateway.services.videos, gateway.services.store
    await runner.stop()
    created = await client.videos.create(prompt="cursed")
    for _ in range(3):  # three workers claimed it and died at once
        now = time.time()
        assert await store.claim_video_job("doomed", now - 1, now) is not None
    runner.start()
    failed = await _until_status(client, created.id, "failed")
    assert failed.error.code == "video_interrupted" and "3 times" in failed.error.message

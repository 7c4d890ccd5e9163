"""Making a claimed job's video: the job carries one charge, moved to another account when grok.com did not take the
call, kept once it did, and reused by the claim that takes over from a dead worker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from grok2api.store.base import AccountPatch, AccountState, ModeQuota, VideoJob, VideoPatch
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")
MODE = "imagine-video"


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {}


async def _accounts(gateway: LiveGateway, *tokens: str, remaining: int = 5) -> dict[str, int]:
    """Accounts with a known video window; their ids by token."""
    await gateway.add_accounts(*tokens)
    for token in tokens:
        await gateway.services.store.update_account(token, AccountPatch(quotas={MODE: ModeQuota(remaining=remaining)}))
    await gateway.services.reload(force=True)
    return {a.token: a.id for a in await gateway.services.store.list_accounts()}


async def _left(gateway: LiveGateway) -> dict[str, int | None]:
    return {a.token: a.quotas[MODE].remaining for a in await gateway.services.store.list_accounts()}


async def _finished(gateway: LiveGateway, video_id: str, timeout: float = 15) -> VideoJob:
    deadline = time.monotonic() + timeout
    while True:
        job = await gateway.services.store.get_video_job(video_id)
        assert job is not None
        if job.status in ("completed", "failed"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def test_a_failure_before_grok_took_the_call_moves_the_charge(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    ids = await _accounts(gateway, "one", "two")
    fake.push_fault("500")  # whichever account is asked first
    created = await client.videos.create(prompt="a storm")
    job = await _finished(gateway, created.id)
    assert job.status == "completed" and job.attempt == 1
    (video,) = fake.delivered_videos()
    assert job.account_id == ids[video.token] and job.upstream_accepted
    left = await _left(gateway)
    assert left[video.token] == 4 and sum(v or 0 for v in left.values()) == 9  # the failed account got its back


async def test_a_call_grok_refused_for_good_fails_the_job_and_gives_the_query_back(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    await _accounts(gateway, "one", "two")
    fake.push_fault("403-cf")  # the egress is blocked: other accounts would fare no better
    created = await client.videos.create(prompt="a storm")
    job = await _finished(gateway, created.id)
    assert (job.status, job.error_code, job.account_id) == ("failed", "egress_blocked", None)
    assert await _left(gateway) == {"one": 5, "two": 5}
    assert len(fake.chat_calls()) == 1


async def test_a_break_after_grok_took_the_call_fails_the_job_and_keeps_the_charge(
    fake: FakeGrok, gateway: LiveGateway, client: Any
) -> None:
    ids = await _accounts(gateway, "one")
    fake.push_fault("reset")  # the connection drops at 25 %
    created = await client.videos.create(prompt="a storm")
    job = await _finished(gateway, created.id)
    assert (job.status, job.error_code, job.account_id, job.upstream_accepted) == (
        "failed",
        "upstream_error",
        ids["one"],
        True,
    )
    assert await _left(gateway) == {"one": 4}  # grok.com counted it


@pytest.mark.parametrize("usable", [True, False])
async def test_a_claim_after_a_dead_worker_reuses_the_charged_account(
    fake: FakeGrok, gateway: LiveGateway, client: Any, usable: bool
) -> None:
    ids = await _accounts(gateway, "one", "two")
    store = gateway.services.store
    await gateway.services.videos.stop()
    created = await client.videos.create(prompt="a comet")
    # A worker claimed it, charged "one", and died before grok.com took the call; its lease has run out.
    now = time.time()
    dead = await store.claim_video_job("dead-worker", now + 60, now)
    assert dead is not None and dead.id == created.id
    assert await store.charge_video_job(dead.id, dead.attempt, ids["one"], MODE) == "taken"
    assert await store.update_video_job(dead.id, dead.attempt, VideoPatch(lease_until=now - 1))
    if not usable:
        await store.update_account("one", AccountPatch(state=AccountState.DISABLED))
    await gateway.services.reload(force=True)
    gateway.services.videos.start()
    job = await _finished(gateway, created.id)
    assert (job.status, job.attempt) == ("completed", 2)
    (video,) = fake.delivered_videos()
    if usable:  # the same account makes it, on the query the job already holds
        assert (video.token, job.account_id) == ("one", ids["one"])
        assert await _left(gateway) == {"one": 4, "two": 5}
    else:  # that query goes back, and the account that makes it carries the charge
        assert (video.token, job.account_id) == ("two", ids["two"])
        assert await _left(gateway) == {"one": 5, "two": 4}

"""A runner's hold on one video job: the attempt its claim made, and every write it may still do with it.

A claim's writes name its attempt; once another claim took the job over (after this one's lease ran out) or
the job was deleted, the store refuses them and the holder learns it has lost the job (``LeaseLost``).
"""

from __future__ import annotations

import time

from ..errors import GatewayError
from ..store.base import Charge, Store, VideoJob, VideoPatch, VideoStatus


class LeaseLost(Exception):
    """The job is no longer this claim's: another worker took it over, or it was deleted."""


class Claim:
    def __init__(self, store: Store, job: VideoJob, lease_seconds: float) -> None:
        self.store = store
        self.job = job
        self.lease_seconds = lease_seconds
        self.lease_until = job.lease_until or time.time() + lease_seconds
        self.lost = False

    @property
    def attempt(self) -> int:
        return self.job.attempt

    async def write(self, patch: VideoPatch) -> None:
        if not await self.store.update_video_job(self.job.id, self.attempt, patch):
            self.lost = True
            raise LeaseLost(self.job.id)

    async def renew(self) -> None:
        until = time.time() + self.lease_seconds
        await self.write(VideoPatch(lease_until=until))
        self.lease_until = until

    async def progress(self, percent: int) -> None:
        await self.write(VideoPatch(progress=percent))
        self.job.progress = percent

    async def accepted(self) -> None:
        """grok.com took the call charged to the job: a later claim must not expect to get that query back."""
        await self.write(VideoPatch(upstream_accepted=True))
        self.job.upstream_accepted = True

    async def charge(self, account_id: int, mode: str) -> bool:
        """The pool's reservation for this job: one query of ``mode`` on the account, recorded on the job."""
        outcome = await self.store.charge_video_job(self.job.id, self.attempt, account_id, mode)
        if outcome == Charge.LOST:
            self.lost = True
            raise LeaseLost(self.job.id)
        if outcome == Charge.TAKEN:
            self.job.account_id, self.job.upstream_accepted = account_id, False
        return outcome == Charge.TAKEN

    async def release(self, account_id: int, mode: str, refund: bool) -> None:
        """Move the job's charge off the account (its query back when ``refund``), so another can carry it."""
        if not await self.store.release_video_charge(self.job.id, self.attempt, account_id, mode, refund):
            self.lost = True
            raise LeaseLost(self.job.id)
        self.job.account_id, self.job.upstream_accepted = None, False

    async def complete(self, media_name: str, thumbnail_name: str) -> None:
        done = VideoPatch(
            status=VideoStatus.COMPLETED,
            progress=100,
            completed_at=time.time(),
            media_name=media_name,
            thumbnail_name=thumbnail_name,
        )
        await self.write(done)

    async def fail(self, err: GatewayError) -> None:
        failed = VideoPatch(
            status=VideoStatus.FAILED,
            completed_at=time.time(),
            error_code=err.code or err.type,
            error_message=err.message,
        )
        await self.write(failed)

"""The video job runner of one process: it claims queued jobs (and jobs whose worker died: their lease ran out),
keeps the lease of each running job alive, and runs a few at a time.

Every process runs one, over the shared store, so any replica makes the videos any replica was asked for. A
claim is atomic and fences the one before it (see ``Claim``): a job is never run by two workers at once, and a
worker that cannot renew its lease in time stops on its own before another takes over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from contextlib import suppress

from ..errors import GatewayError
from ..store.base import StoreUnavailable, VideoJob, VideoPatch
from .claim import Claim, LeaseLost
from .generate import VideoContext, generate

log = logging.getLogger("grok2api.videos")

LEASE_SECONDS = 60.0
POLL_SECONDS = 1.0
MAX_RUNNING = 4  # videos made at once by one process
MAX_CLAIMS = 3  # a job whose workers died this often fails rather than being claimed forever


class VideoRunner:
    def __init__(self, ctx: VideoContext) -> None:
        self.ctx = ctx
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = LEASE_SECONDS
        self.poll_seconds = POLL_SECONDS
        self.max_running = MAX_RUNNING
        self._wake = asyncio.Event()
        self._handover = True
        self._loop_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="video-jobs")

    async def stop(self, handover: bool = True) -> None:
        """Stop claiming and drop the running jobs where they are. With ``handover`` their leases end now, so any
        worker (this one after a restart too) takes them over at once; without, they run out like those of a
        worker that died. The charge each job carries stays with it."""
        self._handover = handover
        tasks = [t for t in (self._loop_task, *self._running) if t is not None]
        self._loop_task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def running(self) -> int:
        """How many jobs this process is making now."""
        return len(self._running)

    def wake(self) -> None:
        """Look for a job now (one was just created here)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            job = await self._claim() if len(self._running) < self.max_running else None
            if job is not None:
                task = asyncio.create_task(self._run(job), name=f"video:{job.id}")
                self._running.add(task)
                task.add_done_callback(self._finished)
                continue  # maybe there are more
            with suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()  # a slot is free

    async def _claim(self) -> VideoJob | None:
        now = time.time()
        try:
            return await self.ctx.store.claim_video_job(self.owner, now + self.lease_seconds, now)
        except StoreUnavailable:  # an outage, logged once where it began: try again on the next poll
            return None
        except Exception as exc:  # try again on the next poll
            log.warning("could not look for video jobs: %s", exc)
            return None

    async def _run(self, job: VideoJob) -> None:
        claim = Claim(self.ctx.store, job, self.lease_seconds)
        me = asyncio.current_task()
        assert me is not None
        beat = asyncio.create_task(self._keep_alive(claim, me), name=f"video-lease:{job.id}")
        try:
            if job.attempt > MAX_CLAIMS:
                raise GatewayError(
                    f"The video job was interrupted {job.attempt - 1} times and given up.", code="video_interrupted"
                )
            log.info("making video %s (attempt %d)", job.id, job.attempt)
            await generate(self.ctx, claim)
        except LeaseLost:
            log.info("video %s was taken over by another worker", job.id)
        except GatewayError as err:
            log.info("video %s failed: %s", job.id, err.message)
            await self._fail(claim, err)
        except asyncio.CancelledError:
            if not claim.lost:  # the runner is stopping
                if self._handover:
                    await self._hand_over(claim)
                raise
            me.uncancel()
            log.warning("video %s: its lease could not be kept; another worker takes it over", job.id)
        except Exception:
            log.exception("video %s hit an internal error", job.id)
            await self._fail(claim, GatewayError("The gateway hit an internal error making the video."))
        finally:
            beat.cancel()

    async def _hand_over(self, claim: Claim) -> None:
        try:
            async with asyncio.timeout(2):
                await claim.write(VideoPatch(lease_until=time.time()))
        except Exception as exc:  # LeaseLost, or the store is gone: the lease runs out by itself
            log.info("video %s was not handed over: %r", claim.job.id, exc)

    async def _fail(self, claim: Claim, err: GatewayError) -> None:
        try:
            await claim.fail(err)
        except LeaseLost:
            pass
        except Exception as exc:  # the job stays in progress; once its lease runs out it is tried again
            log.warning("could not record that video %s failed: %s", claim.job.id, exc)

    async def _keep_alive(self, claim: Claim, work: asyncio.Task[None]) -> None:
        """Renew the lease every third of its length; stop the work once the job is lost, or once the store
        stayed unreachable until the lease was nearly over (another worker may take the job then)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await claim.renew()
                continue
            except LeaseLost:
                pass
            except Exception as exc:
                if time.time() < claim.lease_until - self.lease_seconds / 6:
                    log.warning("could not renew the lease of video %s yet: %s", claim.job.id, exc)
                    continue
            claim.lost = True
            work.cancel()
            return

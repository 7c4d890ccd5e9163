"""The video of one claimed job: an account serves it, grok.com's progress is written to the job, and the finished
MP4 lands in the media cache.

The job pays one query of its mode, once. The pool leases an account with the job's own reservation
(``Claim.charge``: the account's query and the job's record of it in one store step); a claim taking the job
over after a crash finds the charge on the job and reuses that account without taking another query. A failure
before grok.com took the call moves the charge to the next account (its query back when grok.com did not count
it); the account's lease itself never refunds, so the job's record and the window stay in step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import msgspec

from ..errors import GatewayError, InvalidRequest, RateLimited, UpstreamError
from ..gateway import Answer, EventSource, error_for, log_failed_attempt
from ..grok.catalog import TIER_RANK, ModelSpec, find_model
from ..grok.chat import Attachment, ChatTurn, prepare_turn, stream_turn
from ..grok.client import GrokClient
from ..grok.errors import TRANSPORT_ERRORS
from ..grok.events import ErrorEvent, Video, VideoProgress
from ..grok.failures import Failure, FailureKind, classify, classify_event
from ..grok.video import BASIC_MAX_SECONDS, VideoOptions
from ..media.service import FETCH_ERRORS, MediaService
from ..pool import Lease, Pool
from ..settings import RuntimeSettings
from ..store.base import AccountState, Store, VideoJob
from .claim import Claim

log = logging.getLogger("grok2api.videos")

VIDEO_MODEL = "grok-imagine-video"
PROGRESS_EVERY = 1.0  # seconds between progress writes
_HOPEFUL = (AccountState.ACTIVE, AccountState.COOLING)  # states an account leaves by itself


@dataclass
class VideoContext:
    """What making a video needs from the process."""

    store: Store
    pool: Pool
    client: GrokClient
    media: MediaService
    settings: Callable[[], RuntimeSettings]


def video_spec(model: str) -> ModelSpec:
    """The video model a job names (OpenAI's own video model names mean the default one)."""
    spec = find_model(model)
    if spec is None or not spec.video:
        spec = find_model(VIDEO_MODEL)
    assert spec is not None
    return spec


def options_of(job: VideoJob) -> VideoOptions:
    return VideoOptions(duration=job.seconds, aspect_ratio=job.aspect_ratio, resolution=job.resolution)


def tier_floor(pool: Pool, options: VideoOptions) -> set[int]:
    """The accounts too low a tier for ``options`` (basic ones for a video over 6 s). InvalidRequest when the
    pool has accounts and none of them is high enough."""
    rank = TIER_RANK[options.min_tier]
    below = {a.id for a in pool.accounts() if TIER_RANK.get(a.tier, 0) < rank}
    hopeful = [a for a in pool.accounts() if a.id not in below and a.state in _HOPEFUL]
    if below and not hopeful:
        raise InvalidRequest(
            f"A {options.duration} s video needs a super or heavy grok.com account (basic accounts make at most "
            f"{BASIC_MAX_SECONDS} s), and the pool has none. Ask for {BASIC_MAX_SECONDS} seconds, or add a super "
            "or heavy account.",
            param="seconds",
        )
    return below


async def generate(ctx: VideoContext, claim: Claim) -> None:
    """Make the job's video and complete the job. Raises GatewayError when it cannot be made, LeaseLost when
    another claim took the job over."""
    job = claim.job
    settings = ctx.settings()
    image = await ctx.store.get_video_image(job.id) if job.has_image else None
    images: list[Attachment] = [image] if image is not None else []
    turn = ChatTurn(video_spec(job.model), job.prompt, images, video=options_of(job))
    answer = await _open(ctx, claim, turn, settings)
    try:
        video = await _follow(answer, claim)
    finally:
        await answer.finish()
    assert video.url is not None
    name = await ctx.media.remember(video.url, answer.token)
    try:
        await ctx.media.fetch(name, video.url, answer.token, settings)  # /content serves it at once
    except FETCH_ERRORS as exc:  # the media index fetches it again on demand
        log.warning("could not cache the video of %s: %s", job.id, exc)
    thumbnail = await ctx.media.remember(video.thumbnail, answer.token) if video.thumbnail else ""
    await claim.complete(name, thumbnail)


async def _follow(answer: Answer, claim: Claim) -> Video:
    """Read the answer to its end, writing progress to the job; the video, or the GatewayError it ended with."""
    video: Video | None = None
    failure: GatewayError | None = None
    written = 0.0
    async for event in answer.events():
        if isinstance(event, VideoProgress) and event.progress > claim.job.progress and video is None:
            if time.monotonic() - written >= PROGRESS_EVERY:
                written = time.monotonic()
                await claim.progress(min(event.progress, 99))  # 100 is for the finished job
        elif isinstance(event, Video) and video is None:
            video = event
        elif isinstance(event, ErrorEvent) and failure is None and video is None:
            message = f"grok.com reported an error while making the video: {event.message}"
            failure = RateLimited(message) if event.rate_limited else UpstreamError(message)
    # Read to the end rather than hang up once the video is known: grok.com finishes the answer cleanly.
    if video is not None and video.url is None:
        raise InvalidRequest(
            "grok.com moderated the video; nothing was generated. Try another prompt or image.",
            code="content_policy_violation",
        )
    if video is not None:
        return video
    raise failure or UpstreamError("grok.com stopped before the video was ready; nothing was generated.")


async def _lease(ctx: VideoContext, claim: Claim, spec: ModelSpec, exclude: set[int]) -> Lease:
    """An account for the job: the one it is charged to already, else a fresh one that takes the charge."""
    charged = claim.job.account_id
    if charged is not None:

        async def reuse(account_id: int, mode: str) -> bool:
            return account_id == charged  # its query was taken when the job was charged

        others = {a.id for a in ctx.pool.accounts() if a.id != charged}
        try:
            return await ctx.pool.acquire(spec, others, reserve=reuse)
        except GatewayError as exc:
            log.info("video %s: the account it is charged to cannot serve it now (%s)", claim.job.id, exc.message)
            await claim.release(charged, spec.mode, refund=not claim.job.upstream_accepted)
    return await ctx.pool.acquire(spec, exclude, reserve=claim.charge)


async def _open(ctx: VideoContext, claim: Claim, turn: ChatTurn, settings: RuntimeSettings) -> Answer:
    """An answer whose first event arrived, failing over to other accounts before that point."""
    spec = turn.spec
    started = time.monotonic()
    tried = tier_floor(ctx.pool, turn.video or VideoOptions())
    last: Failure | None = None
    for attempt in range(settings.max_attempts):
        if attempt and time.monotonic() - started > settings.retry_budget_seconds:
            break
        try:
            lease = await _lease(ctx, claim, spec, tried)
        except GatewayError:
            if last is not None:
                raise error_for(last) from None
            raise
        tried.add(lease.account.id)
        attempt_started = time.monotonic()
        source: EventSource | None = None
        try:
            request = await prepare_turn(ctx.client, lease.token, lease.account.user_id, turn, settings)
            source = stream_turn(ctx.client, lease.token, request, settings)
            async with asyncio.timeout(settings.stream_first_response_timeout):
                first = await anext(source)
            if isinstance(first[0], ErrorEvent):
                failure = classify_event(first[0])
            else:
                await claim.accepted()
                return Answer(
                    lease, first, source, settings, started, attempt=attempt + 1, attempt_started=attempt_started
                )
        except TimeoutError:
            failure = Failure(FailureKind.SERVER, "grok.com sent nothing before the first-response timeout")
        except StopAsyncIteration:
            failure = Failure(FailureKind.SERVER, "grok.com closed the answer without any content")
        except TRANSPORT_ERRORS as exc:
            failure = classify(exc)
        except BaseException:
            await _close(source)
            # Stopped or taken over: the job keeps its charge for the claim that runs it next.
            await lease.fail(Failure(FailureKind.CANCELLED, "video job interrupted", charged=True))
            raise
        await _close(source)
        # The query is the job's: it goes back (or not) together with the job's record of it, never by the lease.
        await lease.fail(msgspec.structs.replace(failure, charged=True))
        await claim.release(lease.account.id, spec.mode, refund=not failure.charged)
        log_failed_attempt(lease, failure, attempt_started, attempt + 1, video_id=claim.job.id)
        if not failure.retryable:
            raise error_for(failure)
        last = failure
    if last is None:
        raise UpstreamError("grok.com could not be asked for the video in time; try again.")
    raise error_for(last)


async def _close(source: EventSource | None) -> None:
    if source is not None:
        with suppress(Exception):
            await source.aclose()

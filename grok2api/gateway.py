"""Runs one chat job across attempts: pick an account, upload images with it, open the upstream
stream, and fail over to another account while nothing has reached the client yet."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field

from .errors import EgressBlocked, GatewayError, UpstreamError, UpstreamTimeout
from .grok.catalog import IMAGE_GENERATION_COST, ModelSpec
from .grok.client import GrokClient, UpstreamConnectionError, UpstreamHTTPError, chat_payload, video_payload
from .grok.events import Event, Images
from .grok.events import UpstreamError as UpstreamErrorEvent
from .image_input import PreparedImage
from .openai.prompt import Prompt
from .pool import Failure, FailureKind, Lease, Pool, classify
from .settings import RuntimeSettings

log = logging.getLogger("grok2api.gateway")
_IMAGE_MARKER = re.compile(r"\[image \d+\]\s*")


@dataclass
class ChatJob:
    spec: ModelSpec
    requested_model: str
    prompt: Prompt
    images: list[PreparedImage]
    settings: RuntimeSettings
    stream: bool = False


class StreamTimeout(Exception):
    """The upstream stalled: ``first`` tells whether nothing had arrived yet."""

    def __init__(self, first: bool) -> None:
        super().__init__("first response" if first else "idle or total")
        self.first = first


def error_for(failure: Failure) -> GatewayError:
    if failure.kind == FailureKind.EGRESS:
        return EgressBlocked(failure.reason)
    if failure.kind == FailureKind.RATE_LIMITED:
        return UpstreamError(
            f"Every tried account was rate limited by grok.com ({failure.reason}).",
            status=429,
            code="rate_limit_exceeded",
        )
    return UpstreamError(f"grok.com failed: {failure.reason}")


@dataclass
class Answer:
    """An upstream answer that produced its first event; iterate it for the rest, then ``finish``."""

    lease: Lease
    first: list[Event]
    source: AsyncIterator[list[Event]]
    settings: RuntimeSettings
    started: float
    image_cost_charged: bool = False
    failure: Failure | None = None
    _done: bool = field(default=False, repr=False)

    def _deadline(self, first: bool) -> float:
        s = self.settings
        now = time.monotonic()
        limits = [now + (s.stream_first_response_timeout if first else s.stream_chunk_timeout)]
        if s.stream_total_timeout:
            limits.append(self.started + s.stream_total_timeout)
        return min(limits)

    def _note(self, batch: list[Event]) -> None:
        for event in batch:
            if isinstance(event, UpstreamErrorEvent):
                kind = FailureKind.RATE_LIMITED if event.rate_limited else FailureKind.SERVER
                self.failure = Failure(kind, event.message, charged=True)
            elif isinstance(event, Images):
                self.image_cost_charged = True

    async def batches(self) -> AsyncIterator[list[Event]]:
        """The first batch, then the rest, with idle and total timeouts enforced by real timers."""
        self._note(self.first)
        yield self.first
        while True:
            try:
                async with asyncio.timeout_at(_loop_time(self._deadline(first=False))):
                    batch = await anext(self.source)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                self.failure = Failure(FailureKind.SERVER, "grok.com stalled mid-answer", charged=True)
                raise StreamTimeout(first=False) from exc
            except (UpstreamHTTPError, UpstreamConnectionError) as exc:
                failure = classify(exc)
                failure.charged = True
                self.failure = failure
                raise
            self._note(batch)
            yield batch

    async def events(self) -> AsyncIterator[Event]:
        """Every event, one at a time (timeouts as in ``batches``)."""
        async for batch in self.batches():
            for event in batch:
                yield event

    async def finish(self) -> None:
        """Settle the lease and close the upstream connection; safe to call more than once."""
        if self._done:
            return
        self._done = True
        with suppress(Exception):
            await self.source.aclose()  # type: ignore[attr-defined]
        extra = IMAGE_GENERATION_COST if self.image_cost_charged else 0
        if self.failure is not None and self.failure.kind in (
            FailureKind.RATE_LIMITED,
            FailureKind.INVALID,
            FailureKind.BLOCKED,
        ):
            await self.lease.fail(self.failure)
        else:
            await self.lease.succeed(extra)


def _loop_time(monotonic_deadline: float) -> float:
    # asyncio's clock is time.monotonic on every supported platform; keep the conversion explicit.
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


class Gateway:
    def __init__(self, pool: Pool, client: GrokClient, on_failure: Callable[[str], None] | None = None) -> None:
        self.pool = pool
        self.client = client
        self.on_failure = on_failure  # counts failed attempts (metrics)

    async def _upload(
        self, lease: Lease, images: list[PreparedImage], settings: RuntimeSettings
    ) -> list[tuple[str, str]]:
        sem = asyncio.Semaphore(4)

        async def one(img: PreparedImage) -> tuple[str, str]:
            async with sem:
                return await self.client.upload(lease.token, img.file_name, img.mime, img.b64, settings)

        return list(await asyncio.gather(*(one(i) for i in images)))

    async def _payload(self, job: ChatJob, lease: Lease) -> tuple[dict[str, object], str | None]:
        settings = job.settings
        images = job.images
        if job.spec.video and len(images) > 1:
            log.info("video uses only the first image; %d more were not uploaded", len(images) - 1)
            images = images[:1]
        uploaded = await self._upload(lease, images, settings)
        file_ids = [u[0] for u in uploaded]
        if job.spec.video and uploaded:
            file_id, file_uri = uploaded[0]
            media_url = f"{settings.assets_url}/{file_uri}"
            try:
                post_id = await self.client.create_post(lease.token, media_url, settings)
                ref, referer = (
                    f"{settings.upstream_url}/imagine/{post_id}",
                    f"{settings.upstream_url}/imagine/{post_id}",
                )
            except (UpstreamHTTPError, UpstreamConnectionError) as exc:
                log.info("media post failed (%s); using the asset link", exc)
                ref, referer = f"{settings.assets_url}/post/{file_uri}", f"{settings.upstream_url}/imagine/{file_id}"
            # The image is the attachment; its "[image N]" placeholder would end up in the video prompt.
            prompt = _IMAGE_MARKER.sub("", job.prompt.message).strip()
            return video_payload(ref, prompt, [file_id]), referer
        spec = job.spec
        return chat_payload(spec, job.prompt.message, file_ids, settings), None

    async def open(self, job: ChatJob) -> Answer:
        """Return an answer whose first event has arrived, failing over before that point.
        Raises GatewayError when no attempt succeeds; StreamTimeout when the first event never came."""
        settings = job.settings
        started = time.monotonic()
        tried: set[int] = set()
        last: Failure | None = None
        for attempt in range(settings.max_attempts):
            if attempt and time.monotonic() - started > settings.retry_budget_seconds:
                break
            try:
                lease = await self.pool.acquire(job.spec, job.spec.cost, tried)
            except GatewayError:
                if last is not None:
                    raise error_for(last) from None
                raise
            tried.add(lease.account.id)
            source: AsyncIterator[list[Event]] | None = None
            try:
                payload, referer = await self._payload(job, lease)
                source = self.client.stream_chat(lease.token, payload, settings, referer=referer)
                deadline = started + settings.stream_first_response_timeout
                if settings.stream_total_timeout:
                    deadline = min(deadline, started + settings.stream_total_timeout)
                async with asyncio.timeout_at(_loop_time(deadline)):
                    first = await anext(source)
                if isinstance(first[0], UpstreamErrorEvent):
                    raise _InBand(first[0])
                return Answer(lease, first, source, settings, started)
            except TimeoutError:
                await _close(source)
                await lease.fail(Failure(FailureKind.SERVER, "grok.com sent nothing before the first-response timeout"))
                raise StreamTimeout(first=True) from None
            except StopAsyncIteration:
                failure = Failure(FailureKind.SERVER, "grok.com closed the answer without any content")
            except _InBand as exc:
                failure = Failure(
                    FailureKind.RATE_LIMITED if exc.event.rate_limited else FailureKind.SERVER, exc.event.message
                )
            except (UpstreamHTTPError, UpstreamConnectionError) as exc:
                failure = classify(exc)
            except BaseException:
                await _close(source)
                await lease.fail(Failure(FailureKind.CANCELLED, "request cancelled"))
                raise
            await _close(source)
            await lease.fail(failure)
            if self.on_failure is not None:
                self.on_failure(failure.kind)
            log.info("attempt %d on account %d failed: %s", attempt + 1, lease.account.id, failure.reason)
            if not failure.retryable:
                raise error_for(failure)
            last = failure
        assert last is not None
        raise error_for(last)


class _InBand(Exception):
    def __init__(self, event: UpstreamErrorEvent) -> None:
        super().__init__(event.message)
        self.event = event


async def _close(source: AsyncIterator[list[Event]] | None) -> None:
    if source is not None:
        with suppress(Exception):
            await source.aclose()  # type: ignore[attr-defined]


def timeout_error() -> UpstreamTimeout:
    return UpstreamTimeout("grok.com did not answer within the first-response timeout; try again.")

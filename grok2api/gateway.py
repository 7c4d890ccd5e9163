"""Runs one job across attempts: pick an account, let the protocol layer prepare and open the chat turn
(or the media request) with it, and fail over to another account while nothing has reached the client yet.

Everything the protocol layer raises stops here: above the gateway there are only ``GatewayError``s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from .after_response import defer
from .errors import (
    DEFAULT_RETRY_AFTER,
    ConnectionLost,
    EgressBlocked,
    FirstResponseTimeout,
    GatewayError,
    InvalidRequest,
    RateLimited,
    StalledMidAnswer,
    UpstreamError,
    whole_seconds,
)
from .grok.catalog import ModelSpec
from .grok.chat import ChatTurn, prepare_turn, stream_turn
from .grok.client import GrokClient
from .grok.errors import TRANSPORT_ERRORS, TurnNotAdmitted, UploadRejected
from .grok.events import ErrorEvent, Event
from .grok.failures import Failure, FailureKind, classify, classify_event
from .pool import Lease, Pool
from .settings import RuntimeSettings

log = logging.getLogger("grok2api.gateway")

EventSource = AsyncGenerator[list[Event], None]
MAX_REFUSED = 8  # accounts whose query the store refused before the gateway takes them one at a time
SETUP_SLOTS = 32  # chat turns a worker sets up at once (see _SetupSlot)
_TIMER_SLACK = 0.002  # seconds: a loop timer may fire this much early (millisecond clocks)


@dataclass
class ChatJob:
    turn: ChatTurn
    requested_model: str
    settings: RuntimeSettings
    stream: bool = False


class MediaRequest(Protocol):
    """What the protocol layer makes of a media job: its events, for one account (``token``, ``user_id``)."""

    def stream(self, client: GrokClient, token: str, user_id: str, settings: RuntimeSettings) -> EventSource: ...


@dataclass
class MediaJob:
    """A job that is not a chat turn. Each attempt reserves one query of ``spec``'s mode; ``image_param``
    names the request field of its images in errors."""

    spec: ModelSpec
    request: MediaRequest
    settings: RuntimeSettings
    image_param: str = "image"


Starter = Callable[[Lease], Awaitable[EventSource]]


def error_for(failure: Failure, pool_wait: float | None = None) -> GatewayError:
    """The client's error for the last failed attempt. A rate limit waits for grok.com's own word (its Retry-After),
    else ``pool_wait`` (when the pool expects room again), else a default."""
    if failure.kind == FailureKind.EGRESS:
        return EgressBlocked(failure.reason)
    if failure.kind == FailureKind.RATE_LIMITED:
        wait = failure.retry_after or pool_wait or DEFAULT_RETRY_AFTER
        return RateLimited(
            f"Every tried account was rate limited by grok.com ({failure.reason}); retry in about "
            f"{whole_seconds(wait)} s.",
            retry_after=wait,
        )
    return UpstreamError(f"grok.com failed: {failure.reason}")


def log_failed_attempt(
    lease: Lease, failure: Failure, started: float, attempt: int, *, mid_answer: bool = False, **fields: object
) -> None:
    """The one log line of a failed upstream attempt, with what an operator filters on as fields: the account, the
    mode, the verdict (the failure's kind), how long the attempt ran, which attempt it was, and ``fields``."""
    seconds = time.monotonic() - started
    when = "mid-answer" if mid_answer else "before the answer"
    log.warning(
        "upstream attempt failed %s: %s",
        when,
        failure.reason,
        extra={
            "account_id": lease.account.id,
            "mode": lease.mode,
            "verdict": str(failure.kind),
            "duration_ms": round(seconds * 1000),
            "attempt": attempt,
            **fields,
        },
    )


@dataclass
class Answer:
    """An upstream answer that produced its first event; iterate it for the rest, then ``finish``."""

    lease: Lease
    first: list[Event]
    source: EventSource
    settings: RuntimeSettings
    started: float
    failure: Failure | None = None
    attempt: int = 1  # which attempt of the job this answer is (for its log line)
    attempt_started: float | None = None  # when that attempt began (default: ``started``)
    _done: bool = field(default=False, repr=False)
    _reads: _TimedReads | None = field(default=None, repr=False)  # the timer that bounded the first event

    @property
    def token(self) -> str:
        """The serving account's token (generated media is downloaded with it)."""
        return self.lease.token

    def _note(self, batch: list[Event]) -> None:
        for event in batch:
            if isinstance(event, ErrorEvent):
                self.failure = classify_event(event, charged=True)

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        """The first batch, then the rest, with idle and total timeouts enforced by real timers.
        Raises StalledMidAnswer or ConnectionLost (both GatewayErrors) when the answer breaks off."""
        self._note(self.first)
        yield self.first
        loop = asyncio.get_running_loop()
        chunk_timeout = self.settings.stream_chunk_timeout
        total = self.settings.stream_total_timeout
        ends_at = _loop_time(self.started + total) if total else None
        reads = self._reads or _TimedReads(loop)
        try:
            while True:
                deadline = loop.time() + chunk_timeout
                past_total = ends_at is not None and ends_at < deadline
                if ends_at is not None and past_total:
                    deadline = ends_at
                try:
                    batch = await reads.next(self.source, deadline)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if past_total:
                        reason = "grok.com's answer ran past stream_total_timeout"
                        self.failure = Failure(FailureKind.SERVER, reason, charged=True)
                        raise StalledMidAnswer(self.settings.stream_total_timeout) from None
                    self.failure = Failure(FailureKind.SERVER, "grok.com stalled mid-answer", charged=True)
                    raise StalledMidAnswer from None
                except TRANSPORT_ERRORS as exc:
                    failure = classify(exc)
                    failure.charged = True
                    self.failure = failure
                    raise ConnectionLost from None
                self._note(batch)
                yield batch
        finally:
            reads.close()

    async def events(self) -> AsyncGenerator[Event, None]:
        """Every event, one at a time (timeouts as in ``batches``)."""
        async for batch in self.batches():
            for event in batch:
                yield event

    async def finish(self) -> None:
        """Close the upstream call, and settle the lease once the response is sent (at once outside a
        request); safe to call more than once."""
        if self._done:
            return
        self._done = True
        if self._reads is not None:
            self._reads.close()
        with suppress(Exception):
            await self.source.aclose()
        if self.failure is not None:
            started = self.attempt_started if self.attempt_started is not None else self.started
            log_failed_attempt(self.lease, self.failure, started, self.attempt, mid_answer=True)
        # A failed answer settles now: its error (a 429's Retry-After, say) is built from what settling learns.
        if self.failure is not None or not defer(self._settle):
            await self._settle()

    async def _settle(self) -> None:
        if self.failure is not None and self.failure.kind in (
            FailureKind.RATE_LIMITED,
            FailureKind.INVALID,
            FailureKind.BLOCKED,
            FailureKind.EGRESS,  # not the account's fault: no success counted, no penalty either
        ):
            await self.lease.fail(self.failure)
            return
        await self.lease.succeed()


class _TimedReads:
    """The reads of one answer, each bounded by a deadline, with one loop timer for them all instead of a timer
    set and cancelled per read (what ``asyncio.timeout_at`` around each read would do). A read moves the deadline
    on; the timer, when it fires early, waits for the new deadline, and cancels only a read still waiting past
    it, which ``next`` raises as TimeoutError (with the same bookkeeping as ``asyncio.timeout``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[Any] | None = None  # the read waiting now
        self.expired = False

    async def next(self, source: EventSource, deadline: float) -> list[Event]:
        self.deadline = deadline
        timer = self.timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self._due)
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        self.task, self.expired = task, False
        try:
            batch = await anext(source)
        except asyncio.CancelledError:
            if self.expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            self.task = None
        if self.expired:  # the read finished as its deadline passed: the cancellation it asked for is void
            task.uncancel()
        return batch

    def _due(self) -> None:
        self.timer = None
        if self.task is None:
            return  # between reads: the next read sets the timer again
        if self.deadline - self.loop.time() > _TIMER_SLACK:  # moved on since the timer was set
            self.timer = self.loop.call_at(self.deadline, self._due)
            return
        self.expired = True
        self.task.cancel()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _loop_time(monotonic_deadline: float) -> float:
    # asyncio's clock is time.monotonic on every supported platform; keep the conversion explicit.
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


class Gateway:
    def __init__(self, pool: Pool, client: GrokClient, on_failure: Callable[[str], None] | None = None) -> None:
        self.pool = pool
        self.client = client
        self.on_failure = on_failure  # counts failed attempts (metrics)
        self.setups = asyncio.Semaphore(SETUP_SLOTS)

    async def open(self, job: ChatJob) -> Answer:
        """Return an answer whose first event has arrived, failing over before that point.
        Raises GatewayError when no attempt succeeds (FirstResponseTimeout when nothing came in time)."""

        async def start(lease: Lease) -> EventSource:
            account = lease.account
            user_id = await self._user_id(lease, job.settings)
            request = await prepare_turn(self.client, lease.token, user_id, job.turn, job.settings)
            if request.user_id and request.user_id != account.user_id:
                self.pool.remember_user_id(account, request.user_id)
            if request.payload is not None:
                if not await lease.reserved(outage_raises=True):
                    raise TurnNotAdmitted  # an HTTP call sends its message at once: only once the query is taken
                slots[-1].release()
                return stream_turn(self.client, lease.token, request, job.settings)
            admitted = slots[-1].release_when(lease)
            return stream_turn(self.client, lease.token, request, job.settings, admitted=admitted, on_sent=lease.begin)

        slots: list[_SetupSlot] = []

        async def take_slot() -> None:
            for earlier in slots:
                earlier.release()  # an attempt that failed before its message went out
            slot = _SetupSlot(self.setups)
            slots.append(slot)
            if not self.setups.locked():  # a place is free: taken without waiting, so no timer
                await slot.acquire()
                return
            try:
                async with asyncio.timeout(job.settings.stream_first_response_timeout):
                    await slot.acquire()
            except TimeoutError:
                raise FirstResponseTimeout from None

        try:
            return await self._open(
                job.turn.spec, job.settings, start, image_param="messages", overlap=True, before_lease=take_slot
            )
        finally:
            for slot in slots:
                slot.release()

    async def open_media(self, job: MediaJob) -> Answer:
        """``open`` for a job that is not a chat turn (an Imagine generation or edit): the same attempts,
        failover and first-event rules, one query of ``job.spec``'s mode per attempt."""

        async def start(lease: Lease) -> EventSource:
            return job.request.stream(self.client, lease.token, lease.account.user_id, job.settings)

        return await self._open(job.spec, job.settings, start, image_param=job.image_param)

    async def _open(
        self,
        spec: ModelSpec,
        settings: RuntimeSettings,
        start: Starter,
        *,
        image_param: str,
        overlap: bool = False,
        before_lease: Callable[[], Awaitable[None]] | None = None,
    ) -> Answer:
        """``overlap``: the account's query is taken while ``start`` sets the turn up (``Pool.hold``); a
        turn whose query was not taken is tried again on another account without counting as an attempt.
        ``before_lease`` runs before each account is leased (a chat turn waits for a setup place there)."""
        # One timer bounds the first event of every attempt, then each read of the answer (see _TimedReads).
        reads = _TimedReads(asyncio.get_running_loop())
        try:
            return await self._attempts(spec, settings, start, reads, image_param, overlap, before_lease)
        except BaseException:
            reads.close()
            raise

    async def _attempts(
        self,
        spec: ModelSpec,
        settings: RuntimeSettings,
        start: Starter,
        reads: _TimedReads,
        image_param: str,
        overlap: bool,
        before_lease: Callable[[], Awaitable[None]] | None,
    ) -> Answer:
        started = time.monotonic()
        tried: set[int] = set()
        last: Failure | None = None
        attempt = refused = 0
        while attempt < settings.max_attempts:
            if attempt and time.monotonic() - started > settings.retry_budget_seconds:
                break
            if before_lease is not None:
                await before_lease()
            try:
                if overlap and refused < MAX_REFUSED:
                    lease = await self.pool.hold(spec, tried)
                else:
                    lease = await self.pool.acquire(spec, tried)
            except GatewayError:
                if last is not None:
                    raise error_for(last, self.pool.retry_after(spec)) from None
                raise
            tried.add(lease.account.id)
            attempt_started = time.monotonic()
            source: EventSource | None = None
            definitive = False
            try:
                source = await start(lease)
                deadline = started + settings.stream_first_response_timeout
                if settings.stream_total_timeout:
                    deadline = min(deadline, started + settings.stream_total_timeout)
                first = await reads.next(source, _loop_time(deadline))
                if isinstance(first[0], ErrorEvent):
                    raise _InBand(first[0])
                return Answer(
                    lease,
                    first,
                    source,
                    settings,
                    started,
                    attempt=attempt + 1,
                    attempt_started=attempt_started,
                    _reads=reads,
                )
            except TurnNotAdmitted:
                await _close(source)
                await lease.fail(Failure(FailureKind.CANCELLED, "its query was not taken"))
                refused += 1  # the account changed meanwhile: the next one, and not an attempt
                continue
            except TimeoutError:
                await _close(source)
                failure = Failure(FailureKind.SERVER, "grok.com sent nothing before the first-response timeout")
                log_failed_attempt(lease, failure, attempt_started, attempt + 1)
                await lease.fail(failure)
                raise FirstResponseTimeout from None
            except StopAsyncIteration:
                failure = Failure(FailureKind.SERVER, "grok.com closed the answer without any content")
            except _SessionCheckFailed as exc:
                failure, definitive = exc.failure, True
            except _InBand as exc:
                failure = classify_event(exc.event)
            except TRANSPORT_ERRORS as exc:
                failure = classify(exc)
            except UploadRejected as exc:
                await _close(source)
                # The client's image, not the account: nothing is held against it and its query goes back.
                failure = Failure(FailureKind.CANCELLED, f"grok.com refused an uploaded image: {exc.reason}")
                log_failed_attempt(lease, failure, attempt_started, attempt + 1)
                await lease.fail(failure)
                raise InvalidRequest(
                    f"image {exc.index + 1}: grok.com refused the upload: {exc.reason}",
                    param=image_param,
                    code="invalid_image",
                ) from None
            except BaseException:
                await _close(source)
                await lease.fail(Failure(FailureKind.CANCELLED, "request cancelled"))
                raise
            await _close(source)
            await lease.fail(failure, definitive=definitive)
            if self.on_failure is not None:
                self.on_failure(failure.kind)
            log_failed_attempt(lease, failure, attempt_started, attempt + 1)
            if not failure.retryable:
                raise error_for(failure, self.pool.retry_after(spec))
            last = failure
            attempt += 1
        if last is None:  # every account it was given was refused by the store
            raise self.pool.exhausted_error(spec)
        raise error_for(last, self.pool.retry_after(spec))

    async def _user_id(self, lease: Lease, settings: RuntimeSettings) -> str:
        """The account's grok.com user id, which the chat WebSocket needs: asked once per account
        (``GET /api/auth/session``) and kept. That answer is grok.com's own word on the session, so a
        signed-out (``unauthenticated``) or ``blocked`` session settles the account at once rather
        than counting as one more credential failure."""
        account = lease.account
        if account.user_id or settings.chat_transport == "rest":
            return account.user_id
        try:
            user_id = await self.client.auth_session(lease.token, settings)
        except TRANSPORT_ERRORS as exc:
            failure = classify(exc)
            failure.reason = f"{failure.reason} (session check)"
            raise _SessionCheckFailed(failure) from None
        self.pool.remember_user_id(account, user_id)
        return user_id


class _SetupSlot:
    """One of the worker's SETUP_SLOTS places for a chat turn being set up (account, uploads, socket,
    session), given back once its message is on its way. When hundreds of requests arrive together, the
    first ones get their first token while the others wait their turn, instead of all advancing in
    lockstep and all answering late; waiting for grok.com's first token holds no place. Waiting for a
    place counts towards the first-response timeout."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self.slots = slots
        self.held = False

    async def acquire(self) -> None:
        await self.slots.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()

    def release_when(self, lease: Lease) -> Awaitable[bool]:
        """An awaitable of ``lease.reserved()`` that gives the place back first thing after (the message
        is sent next); a turn that fails before that point never awaits it, and ``open`` frees the place."""
        return _Admission(self, lease)

    async def _admit(self, lease: Lease) -> bool:
        try:
            return await lease.reserved(outage_raises=True)
        finally:
            self.release()


class _Admission:
    """Made into a coroutine only when awaited, so one never awaited leaves nothing behind."""

    def __init__(self, slot: _SetupSlot, lease: Lease) -> None:
        self.slot, self.lease = slot, lease

    def __await__(self) -> Generator[Any, None, bool]:
        return self.slot._admit(self.lease).__await__()


class _SessionCheckFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class _InBand(Exception):
    def __init__(self, event: ErrorEvent) -> None:
        super().__init__(event.message)
        self.event = event


async def _close(source: EventSource | None) -> None:
    if source is not None:
        with suppress(Exception):
            await source.aclose()

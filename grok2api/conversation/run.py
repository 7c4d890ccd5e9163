"""Answer a ``Conversation`` through the gateway and hand back neutral answer events.

This is the one entry point every client API uses: ``open_conversation`` checks what the conversation
asks for (tools, response format), flattens it, prepares its images and opens the upstream answer
(raising ``GatewayError`` while nothing has been sent, ``SilentUpstream``, a ``FirstResponseTimeout``,
when grok.com stayed silent); ``ConversationRun.batches`` then yields the answer's events, one list per
upstream read, ending with exactly one ``Finish``. Tool calls and structured answers are emulated on the
way (``emulation.py``), with repair turns as further upstream calls in the same conversation. An answer
that must have a shape (a required tool call, JSON) is read whole inside ``open_conversation``, so its
failure is still an HTTP error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from ..errors import FirstResponseTimeout, GatewayError, InvalidRequest, StalledMidAnswer
from ..gateway import Answer, ChatJob
from ..grok.catalog import ModelSpec
from ..grok.chat import ChatTurn
from ..image_input import prepare_images
from ..services import Services
from ..settings import RuntimeSettings
from .answer import AnswerReader
from .emulation import Emulation
from .events import AnswerEvent, Finish, FinishReason, TokenUsage, estimate_tokens
from .limits import OutputLimit
from .model import Conversation
from .prompt import flatten

log = logging.getLogger("grok2api.conversation")


class SilentUpstream(FirstResponseTimeout):
    """grok.com sent nothing before the first-response timeout; ``usage`` counts the prompt that was sent
    (a stream may still end cleanly with it)."""

    def __init__(self, usage: TokenUsage) -> None:
        super().__init__()
        self.usage = usage


class ConversationRun:
    """One conversation being answered. Iterate ``batches()`` (or ``events()``) once; ``close()`` settles
    the upstream call and is safe to call again (the iterators close it when they end)."""

    def __init__(
        self,
        svc: Services,
        spec: ModelSpec,
        conversation: Conversation,
        emulation: Emulation,
        *,
        requested_model: str,
        stream: bool,
        input_param: str,
    ) -> None:
        self.svc = svc
        self.spec = spec
        self.conversation = conversation
        self.emulation = emulation
        self.limit = emulation.limit
        self.requested_model = requested_model
        self.stream = stream
        self.input_param = input_param
        self.upstream = emulation.upstream_conversation()
        self.prompt_text = ""  # the first upstream message
        self.answer: Answer | None = None
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._settled: list[list[AnswerEvent]] | None = None

    @property
    def settings(self) -> RuntimeSettings:
        """The settings this answer runs under (faces read their presentation settings here)."""
        return self.answer.settings if self.answer is not None else self.svc.settings

    def usage(self, reader: AnswerReader | None = None) -> TokenUsage:
        completion = self._completion_tokens
        if reader is not None:
            completion += estimate_tokens(reader.content) + estimate_tokens(reader.reasoning)
        return TokenUsage(self._prompt_tokens, completion)

    async def _open(self, conversation: Conversation) -> Answer:
        # A video is made from the attached image itself, so its prompt carries no "[image N]" markers.
        prompt = flatten(conversation, mark_images=not self.spec.video, param=self.input_param)
        if not prompt.message.strip() and not prompt.image_urls:
            raise InvalidRequest(f"Nothing to send: {self.input_param} holds no text.", param=self.input_param)
        settings = self.svc.settings
        urls = prompt.image_urls
        images = await prepare_images(urls, settings, self.svc.http, self.input_param) if urls else []
        message = prompt.message.strip() if self.spec.video else prompt.message
        job = ChatJob(ChatTurn(self.spec, message, images), self.requested_model, settings, stream=self.stream)
        if not self.prompt_text:
            self.prompt_text = prompt.message
        self._prompt_tokens += estimate_tokens(prompt.message)
        try:
            return await self.svc.gateway.open(job)
        except FirstResponseTimeout:
            raise SilentUpstream(TokenUsage(self._prompt_tokens, self._completion_tokens)) from None

    async def start(self) -> None:
        """Open the first upstream answer; an answer that must have a shape is read whole here."""
        self.answer = await self._open(self.upstream)
        if not self.emulation.settles_first:
            return
        settled: list[list[AnswerEvent]] = []
        async with aclosing(self._produce()) as batches:
            async for batch in batches:
                settled.append(batch)
        finish = settled[-1][-1]
        assert isinstance(finish, Finish)
        if finish.error is not None:
            raise finish.error
        self._settled = settled

    async def _produce(self) -> AsyncGenerator[list[AnswerEvent], None]:
        """The events of the first answer and of any repair turns, ending with ``Finish``."""
        emulation = self.emulation
        repairs = self.svc.settings.output_repair_turns if emulation.active else 0
        turn = 0
        while True:
            answer = self.answer
            assert answer is not None
            # Emulated answers apply the output limit to their prose only (a call or JSON is never cut).
            reader = AnswerReader(
                answer.settings, self.svc.media, answer.token, None if emulation.active else self.limit
            )
            out: list[AnswerEvent] = []
            try:
                async for batch in answer.batches():
                    failed: GatewayError | None = None
                    for event in batch:
                        try:
                            deltas = reader.read_now(event)
                            if deltas is None:  # generated media: its links are made first
                                deltas = await reader.read(event)
                            if deltas:
                                out.extend(emulation.feed(deltas))
                        except GatewayError as err:
                            failed = err  # what came before the error is still sent
                            break
                    if out:
                        yield out
                        out = []
                    if failed is not None:
                        raise failed
                    if reader.finish_reason is not None:
                        break  # stop sequence or max_tokens: the upstream call is closed below
                out = [*emulation.feed(reader.finish()), *emulation.end()]
            except StalledMidAnswer as stall:
                try:
                    tail = emulation.feed(reader.finish())
                except GatewayError as err:  # e.g. a video that never arrived
                    yield [Finish("error", self.usage(reader), err)]
                else:
                    yield [*tail, Finish("tool_calls" if emulation.calls else "stop", self.usage(reader), stall)]
                return
            except GatewayError as err:
                yield [Finish("error", self.usage(reader), err)]
                return
            finally:
                await answer.finish()
            self._completion_tokens += estimate_tokens(reader.content) + estimate_tokens(reader.reasoning)
            if emulation.needs_repair and turn < repairs:
                turn += 1
                log.info("asking grok.com again (repair turn %d): %s", turn, "; ".join(emulation.problems))
                if out:
                    yield out
                    out = []
                self.upstream = emulation.repair_conversation(self.upstream)
                emulation.begin_repair()
                try:
                    self.answer = await self._open(self.upstream)
                    continue
                except GatewayError as err:
                    log.warning("the repair turn failed: %s", err.message)
            closing, reason, error = emulation.closing()
            if reason is None:
                reason = self._limit_reason()
            yield [*out, *closing, Finish(reason, self.usage(), error)]
            return

    def _limit_reason(self) -> FinishReason:
        return "length" if self.limit.finish_reason == "length" else "stop"

    async def batches(self) -> AsyncGenerator[list[AnswerEvent], None]:
        """The answer's events, one list per upstream read (a busy read carries many events)."""
        try:
            if self._settled is not None:
                for batch in self._settled:
                    yield batch
                return
            async with aclosing(self._produce()) as produced:
                async for batch in produced:
                    yield batch
        finally:
            await self.close()

    async def events(self) -> AsyncGenerator[AnswerEvent, None]:
        """``batches()`` one event at a time."""
        async with aclosing(self.batches()) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def collect(self, take: Callable[[AnswerEvent], object]) -> Finish:
        """A non-stream answer read whole: every event before the ``Finish`` goes to ``take``, then the run is
        closed. Raises the answer's error when it failed or broke off mid-answer."""
        finish: Finish | None = None
        # The answer's own batches when it is read here (one generator fewer per batch than ``batches()``).
        produced = self._produce() if self._settled is None else self.batches()
        try:
            async with aclosing(produced) as batches:
                async for batch in batches:
                    for event in batch:
                        if isinstance(event, Finish):
                            finish = event
                            break
                        take(event)
                    if finish is not None:
                        break
        finally:
            await self.close()
        assert finish is not None, "a run always ends with a Finish"
        if finish.error is not None:
            raise finish.error
        return finish

    async def close(self) -> None:
        if self.answer is not None:
            await self.answer.finish()


def check_chat_model(spec: ModelSpec) -> None:
    """An image model answers only through the Images API: grok.com has no chat in Imagine's modes, so a turn
    sent in one would only fail there."""
    if spec.kind == "image":
        raise InvalidRequest(
            f"{spec.id} is an image model: it answers at /v1/images/generations and /v1/images/edits, not in a "
            "conversation. GET /v1/models lists the chat models.",
            param="model",
        )


async def open_conversation(
    svc: Services,
    spec: ModelSpec,
    conversation: Conversation,
    *,
    requested_model: str,
    stream: bool = False,
    input_param: str = "messages",
) -> ConversationRun:
    """Open the answer to ``conversation`` on model ``spec`` (``requested_model`` is the id the client
    used). ``input_param`` names the request field holding the turns, for errors about them. Raises
    InvalidRequest for tools or schemas that cannot be used, and ``UnusableAnswer`` (422) when a required
    tool call or a JSON answer did not come right even after the repair turns."""
    check_chat_model(spec)
    limit = OutputLimit(conversation.stop, conversation.max_output_tokens)
    run = ConversationRun(
        svc,
        spec,
        conversation,
        Emulation(conversation, limit),
        requested_model=requested_model,
        stream=stream,
        input_param=input_param,
    )
    await run.start()
    return run


def count_prompt_tokens(spec: ModelSpec, conversation: Conversation, *, input_param: str = "messages") -> int:
    """The estimated tokens of the first message ``open_conversation`` would send for ``conversation`` (tool and
    format instructions included), without sending it: what a face's token-counting endpoint reports. Raises
    InvalidRequest for what ``open_conversation`` would refuse before sending."""
    check_chat_model(spec)
    emulation = Emulation(conversation, OutputLimit(conversation.stop, conversation.max_output_tokens))
    prompt = flatten(emulation.upstream_conversation(), mark_images=not spec.video, param=input_param)
    return estimate_tokens(prompt.message)

"""Answer a ``Conversation`` through the gateway and hand back neutral answer events.

This is the one entry point every client API uses: ``open_conversation`` flattens the conversation,
prepares its images and opens the upstream answer (raising ``GatewayError`` while nothing has been sent,
``SilentUpstream``, a ``FirstResponseTimeout``, when grok.com stayed silent); ``ConversationRun.batches``
then yields the answer's events, one list per upstream read, ending with exactly one ``Finish``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ..errors import FirstResponseTimeout, GatewayError, InvalidRequest, StalledMidAnswer
from ..gateway import Answer, ChatJob
from ..grok.catalog import ModelSpec
from ..grok.chat import ChatTurn
from ..image_input import prepare_images
from ..services import Services
from ..settings import RuntimeSettings
from .answer import AnswerReader
from .events import AnswerEvent, Finish, FinishReason, TokenUsage, estimate_tokens
from .limits import OutputLimit
from .model import Conversation
from .prompt import flatten


class SilentUpstream(FirstResponseTimeout):
    """grok.com sent nothing before the first-response timeout; ``usage`` counts the prompt that was sent
    (a stream may still end cleanly with it)."""

    def __init__(self, usage: TokenUsage) -> None:
        super().__init__()
        self.usage = usage


class ConversationRun:
    """One conversation being answered. Iterate ``batches()`` (or ``events()``) once; ``close()`` settles
    the upstream call and is safe to call again (the iterators close it when they end)."""

    def __init__(self, svc: Services, conversation: Conversation, prompt_text: str, answer: Answer) -> None:
        self.svc = svc
        self.conversation = conversation
        self.prompt_text = prompt_text
        self.answer = answer
        self.limit = OutputLimit(conversation.stop, conversation.max_output_tokens)

    @property
    def settings(self) -> RuntimeSettings:
        """The settings this answer runs under (faces read their presentation settings here)."""
        return self.answer.settings

    def usage(self, reader: AnswerReader | None = None) -> TokenUsage:
        completion = 0
        if reader is not None:
            completion = estimate_tokens(reader.content) + estimate_tokens(reader.reasoning)
        return TokenUsage(estimate_tokens(self.prompt_text), completion)

    async def batches(self) -> AsyncGenerator[list[AnswerEvent], None]:
        """The answer's events, one list per upstream read (a busy read carries many events)."""
        answer = self.answer
        reader = AnswerReader(answer.settings, self.svc.media, answer.token, self.limit)
        try:
            try:
                async for batch in answer.batches():
                    out: list[AnswerEvent] = []
                    failed: GatewayError | None = None
                    for event in batch:
                        try:
                            out.extend(await reader.read(event))
                        except GatewayError as err:
                            failed = err  # what came before the error is still sent
                            break
                    if out:
                        yield out
                    if failed is not None:
                        raise failed
                    if reader.finish_reason is not None:
                        break  # stop sequence or max_tokens: the upstream call is closed below
                tail: list[AnswerEvent] = [*reader.finish()]
                reason: FinishReason = "length" if reader.finish_reason == "length" else "stop"
                yield [*tail, Finish(reason, self.usage(reader))]
            except StalledMidAnswer as stall:
                try:
                    tail = [*reader.finish()]
                except GatewayError as err:  # e.g. a video that never arrived
                    yield [Finish("error", self.usage(reader), err)]
                else:
                    yield [*tail, Finish("stop", self.usage(reader), stall)]
            except GatewayError as err:
                yield [Finish("error", self.usage(reader), err)]
        finally:
            await self.close()

    async def events(self) -> AsyncGenerator[AnswerEvent, None]:
        """``batches()`` one event at a time."""
        batches = self.batches()
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            await batches.aclose()

    async def close(self) -> None:
        await self.answer.finish()


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
    used). ``input_param`` names the request field holding the turns, for errors about them."""
    # A video is made from the attached image itself, so its prompt carries no "[image N]" markers.
    prompt = flatten(conversation, mark_images=not spec.video, param=input_param)
    if not prompt.message.strip() and not prompt.image_urls:
        raise InvalidRequest(f"Nothing to send: {input_param} holds no text.", param=input_param)
    settings = svc.settings
    images = await prepare_images(prompt.image_urls, settings, svc.http) if prompt.image_urls else []
    message = prompt.message.strip() if spec.video else prompt.message
    job = ChatJob(ChatTurn(spec, message, images), requested_model, settings, stream=stream)
    try:
        answer = await svc.gateway.open(job)
    except FirstResponseTimeout:
        raise SilentUpstream(TokenUsage(estimate_tokens(prompt.message), 0)) from None
    return ConversationRun(svc, conversation, prompt.message, answer)

"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: Anthropic's Messages API over the neutral
conversation. Errors on these paths are rendered in Anthropic's shape by the edge (``errors.error_body``)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from ..conversation import Conversation
from ..conversation.run import count_prompt_tokens, open_conversation
from ..edge import (
    ClientGone,
    authenticate,
    authorize,
    decode,
    json_response,
    read_body,
    record,
    recorder,
    services,
    sse_response,
    while_connected,
)
from ..errors import ModelNotFound
from ..grok.catalog import ModelSpec
from ..services import Services
from .render import collect_message, stream_message
from .request import shows_thinking, to_conversation
from .schemas import COUNT_DECODER, REQUEST_DECODER, MessageOut, TokenCount

log = logging.getLogger("grok2api.messages")


def find_model(svc: Services, model: str) -> ModelSpec:
    spec = svc.catalog.find(model)
    if spec is None:
        raise ModelNotFound(
            f"The model {model!r} does not exist. GET /v1/models lists the available models.", param="model"
        )
    return spec


async def create_message(request: Request) -> Response:
    svc = services(request)
    key = authenticate(request)
    req = decode(REQUEST_DECODER, await read_body(request, svc.boot.max_body_bytes))
    spec = find_model(svc, req.model)
    await authorize(request, key, spec.id)
    conversation = to_conversation(req)
    thinking = shows_thinking(req)
    try:
        if not req.stream:
            message = await while_connected(request, _complete(svc, spec, conversation, req.model, thinking))
            record(request, True)
            return json_response(message)
        # A silent grok.com (SilentUpstream) is a 504 here: nothing has been streamed yet.
        run = await while_connected(
            request, open_conversation(svc, spec, conversation, requested_model=req.model, stream=True)
        )
    except ClientGone:
        log.info("client went away before its %s message was ready; upstream call cancelled", spec.id)
        return Response(status_code=499)
    return sse_response(stream_message(run, req.model, thinking, recorder(request)))


async def _complete(
    svc: Services, spec: ModelSpec, conversation: Conversation, model: str, thinking: bool
) -> MessageOut:
    run = await open_conversation(svc, spec, conversation, requested_model=model)
    return await collect_message(run, model, thinking)


async def count_tokens(request: Request) -> Response:
    """The estimated input tokens of a messages request: what its ``usage.input_tokens`` would say."""
    svc = services(request)
    authenticate(request)
    req = decode(COUNT_DECODER, await read_body(request, svc.boot.max_body_bytes))
    spec = find_model(svc, req.model)
    return json_response(TokenCount(input_tokens=count_prompt_tokens(spec, to_conversation(req))))

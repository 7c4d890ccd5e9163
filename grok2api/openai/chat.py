"""``POST /v1/chat/completions``: the request turned into a ``Conversation``, its answer rendered back."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from ..conversation import Conversation
from ..conversation.run import ConversationRun, SilentUpstream, open_conversation
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
from .chat_request import to_conversation
from .render import collect_answer, stream_answer, timeout_stream
from .schemas import REQUEST_DECODER, ChatCompletion

log = logging.getLogger("grok2api.chat")


async def chat_completions(request: Request) -> Response:
    svc = services(request)
    key = authenticate(request)
    req = decode(REQUEST_DECODER, await read_body(request, svc.boot.max_body_bytes))
    spec = svc.catalog.find(req.model)
    if spec is None:
        raise ModelNotFound(
            f"The model {req.model!r} does not exist. GET /v1/models lists the available models.", param="model"
        )
    await authorize(request, key, spec.id)
    conversation = to_conversation(req)
    stream = bool(req.stream)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    try:
        if not stream:
            completion = await while_connected(request, _complete(svc, spec, conversation, req.model))
            record(request, True)
            return json_response(completion)
        # Until the first event nothing is streaming yet, so watch for the client leaving here too.
        run = await while_connected(
            request, open_conversation(svc, spec, conversation, requested_model=req.model, stream=True)
        )
    except ClientGone:
        log.info("client went away before its %s answer was ready; upstream call cancelled", spec.id)
        return Response(status_code=499)
    except SilentUpstream as silent:
        if not stream:
            raise
        record(request, False)
        return sse_response(timeout_stream(req.model, silent.usage, include_usage))
    return sse_response(stream_answer(run, req.model, include_usage, recorder(request)))


async def _complete(svc: Services, spec: ModelSpec, conversation: Conversation, model: str) -> ChatCompletion:
    run: ConversationRun = await open_conversation(svc, spec, conversation, requested_model=model)
    return await collect_answer(run, model)

"""``POST /v1/chat/completions``: the request turned into a chat job, the answer rendered back."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

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
from ..errors import FirstResponseTimeout, InvalidRequest, ModelNotFound
from ..gateway import ChatJob
from ..grok.chat import ChatTurn
from ..image_input import prepare_images
from ..services import Services
from .limits import OutputLimit
from .prompt import flatten
from .render import collect_answer, stream_answer, timeout_stream
from .schemas import REQUEST_DECODER, ChatCompletion, ChatCompletionRequest

log = logging.getLogger("grok2api.chat")


def output_limit(req: ChatCompletionRequest) -> OutputLimit:
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    max_tokens = req.max_completion_tokens if isinstance(req.max_completion_tokens, int) else None
    if max_tokens is None and isinstance(req.max_tokens, int):
        max_tokens = req.max_tokens
    return OutputLimit(stop, max_tokens)


async def chat_completions(request: Request) -> Response:
    svc = services(request)
    settings = svc.settings
    key = authenticate(request)
    req = decode(REQUEST_DECODER, await read_body(request, svc.boot.max_body_bytes))
    spec = svc.catalog.find(req.model)
    if spec is None:
        raise ModelNotFound(
            f"The model {req.model!r} does not exist. GET /v1/models lists the available models.", param="model"
        )
    await authorize(request, key, spec.id)
    if req.tool_choice == "required" or isinstance(req.tool_choice, dict):
        raise InvalidRequest(
            "Tool calling is not available through grok.com's web API: tool_choice may only be "
            "'auto' or 'none' (tools are then ignored and Grok answers in text).",
            param="tool_choice",
        )
    # A video is made from the attached image itself, so its prompt carries no "[image N]" markers.
    prompt = flatten(req.messages, mark_images=not spec.video)
    if not prompt.message.strip() and not prompt.image_urls:
        raise InvalidRequest("The messages contain no text.", param="messages")
    images = await prepare_images(prompt.image_urls, settings, svc.http) if prompt.image_urls else []
    message = prompt.message.strip() if spec.video else prompt.message
    job = ChatJob(ChatTurn(spec, message, images), req.model, settings, stream=bool(req.stream))
    limit = output_limit(req)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    try:
        if not job.stream:
            completion = await while_connected(request, _complete(svc, job, prompt.message, limit))
            record(request, True)
            return json_response(completion)
        # Until the first event nothing is streaming yet, so watch for the client leaving here too.
        answer = await while_connected(request, svc.gateway.open(job))
    except ClientGone:
        log.info("client went away before its %s answer was ready; upstream call cancelled", spec.id)
        return Response(status_code=499)
    except FirstResponseTimeout:
        if not job.stream:
            raise
        record(request, False)
        return sse_response(timeout_stream(req.model, prompt.message, include_usage))
    body = stream_answer(answer, req.model, prompt.message, svc.media, include_usage, limit, recorder(request))
    return sse_response(body)


async def _complete(svc: Services, job: ChatJob, prompt_text: str, limit: OutputLimit) -> ChatCompletion:
    answer = await svc.gateway.open(job)
    return await collect_answer(answer, job.requested_model, prompt_text, svc.media, limit)

"""OpenAI's Responses API: ``POST /v1/responses`` (stream or not), ``GET`` and ``DELETE /v1/responses/{id}``.

The request becomes a neutral ``Conversation`` (``responses_request``), the answer is rendered as a response
object or its stream events (``responses_render``), and with ``store`` (the default) the finished response is
kept per client key for ``responses_ttl_hours`` (``responses_store``), so that ``previous_response_id`` and
``GET`` work on any replica.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from ..conversation import Conversation
from ..conversation.run import open_conversation
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
from ..errors import InvalidRequest, ModelNotFound
from ..grok.catalog import ModelSpec
from ..services import Services
from ..store.base import ClientKey
from .responses_objects import ResponseDeleted, ResponseObject
from .responses_render import ResponseBuilder, collect_response, new_id, new_response, stream_response
from .responses_request import REQUEST_DECODER, ResponsesOrder
from .responses_store import delete_stored, load_history, load_response, store_response

log = logging.getLogger("grok2api.responses")


def _owner(key: ClientKey | None) -> str:
    return key.id if key is not None else ""


async def create_response(request: Request) -> Response:
    svc = services(request)
    key = authenticate(request)
    req = decode(REQUEST_DECODER, await read_body(request, svc.boot.max_body_bytes))
    spec = svc.catalog.find(req.model)
    if spec is None:
        raise ModelNotFound(
            f"The model {req.model!r} does not exist. GET /v1/models lists the available models.", param="model"
        )
    await authorize(request, key, spec.id)
    order = ResponsesOrder(req)
    owner = _owner(key)
    history = await load_history(svc, owner, req.previous_response_id) if req.previous_response_id else []
    conversation = order.conversation(history)
    builder = ResponseBuilder(new_response(order, new_id("resp")), stream=order.stream)

    async def finished(response: ResponseObject) -> None:
        if order.store and response.status != "failed":
            await store_response(svc, owner, response, conversation.turns)

    try:
        if not order.stream:
            work = _complete(svc, spec, conversation, req.model, builder)
            response = await while_connected(request, work)
            await finished(response)
            record(request, True)
            return json_response(response)
        # Until the first event nothing is streaming yet, so watch for the client leaving here too.
        run = await while_connected(
            request,
            open_conversation(svc, spec, conversation, requested_model=req.model, stream=True, input_param="input"),
        )
    except ClientGone:
        log.info("client went away before its %s response was ready; upstream call cancelled", spec.id)
        return Response(status_code=499)
    return sse_response(stream_response(run, builder, finished, recorder(request)))


async def _complete(
    svc: Services, spec: ModelSpec, conversation: Conversation, model: str, builder: ResponseBuilder
) -> ResponseObject:
    run = await open_conversation(svc, spec, conversation, requested_model=model, input_param="input")
    return await collect_response(run, builder)


def _no_stream_replay(request: Request) -> None:
    if request.query_params.get("stream", "false").lower() not in ("false", "0", ""):
        raise InvalidRequest("Streaming a stored response again is not supported; omit stream.", param="stream")


async def get_response(request: Request) -> Response:
    svc = services(request)
    key = authenticate(request)
    _no_stream_replay(request)
    body = await load_response(svc, _owner(key), request.path_params["response_id"])
    return Response(body, media_type="application/json")


async def delete_response(request: Request) -> Response:
    svc = services(request)
    key = authenticate(request)
    response_id = request.path_params["response_id"]
    await delete_stored(svc, _owner(key), response_id)
    return json_response(ResponseDeleted(id=response_id))

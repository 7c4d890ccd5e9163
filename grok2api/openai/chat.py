"""``POST /v1/chat/completions`` and ``GET /v1/models[/{id}]``."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import BodyTooLarge, GatewayError, InvalidRequest, ModelNotFound
from ..gateway import ChatJob, StreamTimeout, timeout_error
from ..grok.catalog import MODELS, find_model
from ..image_input import prepare_images
from ..services import Services
from .limits import OutputLimit
from .prompt import flatten
from .render import collect_answer, stream_answer, timeout_stream
from .schemas import REQUEST_DECODER, ChatCompletion, ChatCompletionRequest, ModelCard, ModelList, encode

log = logging.getLogger("grok2api.chat")
T = TypeVar("T")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
NESTED_TOO_DEEPLY = "The request body is nested too deeply to decode."


def json_response(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(obj), status_code=status, media_type="application/json", headers=headers)


def error_response(err: GatewayError) -> Response:
    return Response(err.to_json(), status_code=err.status, media_type="application/json", headers=err.headers)


def _param_of(message: str) -> str | None:
    """The offending field from a msgspec message, e.g. ``temperature`` or ``messages[0].role``."""
    path = message.rsplit("`$", 1)[1].rstrip("`").strip().lstrip(".") if "`$" in message else ""
    missing = re.search(r"missing required field `([^`]+)`", message)
    if missing is not None:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The request body is larger than {limit // (1024 * 1024)} MB.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit // (1024 * 1024)} MB.")
    return bytes(body)


class ClientGone(Exception):
    """The client closed its connection before the answer was ready."""


async def _disconnected(request: Request) -> None:
    """Return when the client goes away; the body has been read, so nothing else arrives before that."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def while_connected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it (its cleanup closes the upstream call and
    settles the lease) and raise ClientGone. Once a stream has started, Starlette watches for itself."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait((task,))  # let its cleanup run; our own cancellation still propagates
        if not task.cancelled() and task.exception() is not None:
            log.info("the abandoned request ended with %r", task.exception())
        raise ClientGone
    return task.result()


async def _complete(svc: Services, job: ChatJob, prompt_text: str, limit: OutputLimit) -> ChatCompletion:
    answer = await svc.gateway.open(job)
    return await collect_answer(answer, job.requested_model, prompt_text, svc.media, limit)


def output_limit(req: ChatCompletionRequest) -> OutputLimit:
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    max_tokens = req.max_completion_tokens if isinstance(req.max_completion_tokens, int) else None
    if max_tokens is None and isinstance(req.max_tokens, int):
        max_tokens = req.max_tokens
    return OutputLimit(stop, max_tokens)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def chat_completions(request: Request) -> Response:
    svc = services(request)
    settings = svc.settings
    model_id = "unknown"
    key_id = ""
    try:
        key = svc.keys.authenticate(request.headers.get("authorization"), settings.api_key)
        key_id = key.id if key else ""
        raw = await read_body(request, svc.boot.max_body_bytes)
        try:
            req = REQUEST_DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            text = str(exc)
            raise InvalidRequest(text.replace("`", ""), param=_param_of(text)) from None
        except msgspec.DecodeError:
            raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
        except RecursionError:
            raise InvalidRequest(NESTED_TOO_DEEPLY, code="invalid_json") from None
        spec = find_model(req.model)
        if spec is None:
            raise ModelNotFound(
                f"The model {req.model!r} does not exist. GET /v1/models lists the available models.",
                param="model",
            )
        model_id = spec.id
        svc.keys.check(key, spec.id)
        if req.tool_choice == "required" or isinstance(req.tool_choice, dict):
            raise InvalidRequest(
                "Tool calling is not available through grok.com's web API: tool_choice may only be "
                "'auto' or 'none' (tools are then ignored and Grok answers in text).",
                param="tool_choice",
            )
        prompt = flatten(req.messages)
        if not prompt.message.strip() and not prompt.image_urls:
            raise InvalidRequest("The messages contain no text.", param="messages")
        images = await prepare_images(prompt.image_urls, settings, svc.http)
        job = ChatJob(spec, req.model, prompt, images, settings, stream=bool(req.stream))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        if not job.stream:
            try:
                completion = await while_connected(request, _complete(svc, job, prompt.message, output_limit(req)))
            except StreamTimeout:
                svc.metrics.record(model_id, False, key_id)
                raise timeout_error() from None
            except ClientGone:
                log.info("client went away before its %s answer was ready; upstream call cancelled", model_id)
                return Response(status_code=499)
            svc.metrics.record(model_id, True, key_id)
            return json_response(completion)
        try:
            # Until the first event nothing is streaming yet, so watch for the client leaving here too.
            answer = await while_connected(request, svc.gateway.open(job))
        except StreamTimeout:
            svc.metrics.record(model_id, False, key_id)
            body = timeout_stream(req.model, prompt.message, include_usage)
            return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)
        except ClientGone:
            log.info("client went away before its %s stream started; upstream call cancelled", model_id)
            return Response(status_code=499)
        svc.metrics.record(model_id, True, key_id)
        body = stream_answer(answer, req.model, prompt.message, svc.media, include_usage, output_limit(req))
        return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)
    except GatewayError as err:
        if err.status >= 500 or err.status == 429:
            svc.metrics.record(model_id, False, key_id)
        log.info("chat request failed: %s %s", err.status, err.message)
        return error_response(err)


def _card(spec_id: str) -> ModelCard:
    spec = MODELS[spec_id]
    return ModelCard(
        id=spec.id,
        created=1_735_689_600,  # fixed, so clients can cache the list
        display_name=spec.display_name,
        description=spec.description,
        raw_model_path=f"{spec.model_name}/{spec.model_mode}",
        default_max_output_tokens=spec.max_output_tokens,
    )


async def list_models(request: Request) -> Response:
    svc = services(request)
    try:
        svc.keys.authenticate(request.headers.get("authorization"), svc.settings.api_key)
    except GatewayError as err:
        return error_response(err)
    return json_response(ModelList(data=[_card(m) for m in MODELS]))


async def get_model(request: Request) -> Response:
    svc = services(request)
    try:
        svc.keys.authenticate(request.headers.get("authorization"), svc.settings.api_key)
        model_id = request.path_params["model_id"]
        if model_id not in MODELS:
            raise ModelNotFound(f"The model {model_id!r} does not exist.", param="model")
    except GatewayError as err:
        return error_response(err)
    return json_response(_card(model_id))

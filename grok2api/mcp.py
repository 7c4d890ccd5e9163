"""``POST /mcp``: a stateless Model Context Protocol server (streamable HTTP transport, JSON answers)
with one tool, ``ask_grok``, answered through the same gateway as /v1/chat/completions.

Auth is checked on every call against the live ``api_key`` and client keys (the reference took a
snapshot of the key at import time).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from . import __version__
from .conversation import Conversation, text_turn
from .conversation.run import open_conversation
from .edge import authenticate, authorize, read_body, record, services
from .errors import GatewayError, InvalidRequest, ModelNotFound
from .grok.catalog import DEFAULT_MODEL, MODELS
from .openai.render import collect_answer
from .services import Services

PROTOCOL_VERSION = "2025-06-18"
_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()

ASK_GROK = {
    "name": "ask_grok",
    "description": "Ask Grok a question and get its answer (with web search when Grok decides to search).",
    "inputSchema": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "The question or instruction."},
            "model": {"type": "string", "enum": sorted(MODELS), "default": DEFAULT_MODEL},
            "system_prompt": {"type": "string", "description": "Optional instructions for Grok."},
        },
        "required": ["query"],
    },
}


def _rpc(id_: Any, result: Any = None, error: tuple[int, str] | None = None) -> dict[str, Any]:
    if error is not None:
        return {"jsonrpc": "2.0", "id": id_, "error": {"code": error[0], "message": error[1]}}
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def _json(body: Any, status: int = 200) -> Response:
    return Response(_ENCODER.encode(body), status_code=status, media_type="application/json")


async def _ask(svc: Services, args: dict[str, Any], key_model_check: Any) -> str:
    query = args.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("ask_grok needs a non-empty 'query' string.", param="query")
    model_id = args.get("model") or DEFAULT_MODEL
    spec = svc.catalog.find(str(model_id))
    if spec is None:
        raise ModelNotFound(f"The model {model_id!r} does not exist.", param="model")
    await key_model_check(spec.id)
    system = args.get("system_prompt")
    conversation = Conversation(
        system=system if isinstance(system, str) else "",
        turns=[text_turn("user", query)],
    )
    run = await open_conversation(svc, spec, conversation, requested_model=spec.id, input_param="query")
    completion = await collect_answer(run, spec.id)
    return completion.choices[0].message.content or ""


async def _call(svc: Services, method: str, params: dict[str, Any], check: Any, done: Any) -> Any:
    if method == "initialize":
        return {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "grok2api", "version": __version__},
            "instructions": "Use ask_grok to put a question to Grok.",
        }
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": [ASK_GROK]}
    if method == "tools/call":
        if params.get("name") != "ask_grok":
            raise LookupError(f"unknown tool {params.get('name')!r}")
        args = params.get("arguments") or {}
        try:
            text = await _ask(svc, args if isinstance(args, dict) else {}, check)
        except GatewayError as err:
            if err.status >= 500 or err.status == 429:
                done(False)
            return {"content": [{"type": "text", "text": f"Error: {err.message}"}], "isError": True}
        done(True)
        return {"content": [{"type": "text", "text": text}], "isError": False}
    raise KeyError(method)


async def mcp_endpoint(request: Request) -> Response:
    svc = services(request)
    key = authenticate(request)
    if request.method != "POST":
        return Response(status_code=405, headers={"Allow": "POST"})  # no server-initiated stream
    raw = await read_body(request, svc.boot.max_body_bytes)
    try:
        message = _DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return _json(_rpc(None, error=(-32700, "Parse error: the body is not JSON")), 400)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not isinstance(message.get("method"), str):
        return _json(_rpc(None, error=(-32600, "Invalid request: expected one JSON-RPC 2.0 message")), 400)
    if "id" not in message:
        return Response(status_code=202)  # a notification (e.g. notifications/initialized)
    params = message.get("params") or {}

    async def check(model: str) -> None:
        await authorize(request, key, model)

    def done(ok: bool) -> None:
        record(request, ok)

    try:
        result = await _call(svc, message["method"], params if isinstance(params, dict) else {}, check, done)
    except KeyError:
        return _json(_rpc(message["id"], error=(-32601, f"Method not found: {message['method']}")))
    except LookupError as exc:
        return _json(_rpc(message["id"], error=(-32602, str(exc))))
    return _json(_rpc(message["id"], result))

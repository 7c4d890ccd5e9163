"""Stored responses: what ``GET /v1/responses/{id}`` returns and what a ``previous_response_id`` follow-up replays.

A stored response keeps the response object and the whole conversation it answered (its turns, earlier
responses' included, then the answer as an assistant turn), so a follow-up is one store read and works on any
replica and any account: the replayed turns go to Grok again. ``instructions`` are not kept, as OpenAI's
previous_response_id does not carry them over. Each response belongs to the client key that made it.
"""

from __future__ import annotations

import logging
import time

import msgspec
from msgspec import Raw, Struct

from ..conversation import Image, Part, Role, Text, ToolCall, Turn
from ..errors import NotFound
from ..services import Services
from .responses_objects import FunctionCall, OutputMessage, ResponseObject, encode

log = logging.getLogger("grok2api.responses")
MAX_ID = 64


class SavedPart(Struct, omit_defaults=True):
    text: str = ""
    image: str = ""


class SavedCall(Struct):
    id: str
    name: str
    arguments: str


class SavedTurn(Struct, omit_defaults=True):
    role: Role
    parts: list[SavedPart] = []
    calls: list[SavedCall] = []
    call_id: str = ""
    name: str = ""


class Saved(Struct):
    """The stored body: the response object as sent, and the conversation to replay."""

    response: Raw
    turns: list[SavedTurn]


_DECODER = msgspec.json.Decoder(Saved)


def _save_part(part: Part) -> SavedPart:
    return SavedPart(text=part.text) if isinstance(part, Text) else SavedPart(image=part.url)


def _load_part(part: SavedPart) -> Part:
    return Image(part.image) if part.image else Text(part.text)


def save_turns(turns: list[Turn]) -> list[SavedTurn]:
    return [
        SavedTurn(
            role=t.role,
            parts=[_save_part(p) for p in t.content],
            calls=[SavedCall(c.id, c.name, c.arguments_json()) for c in t.tool_calls],
            call_id=t.tool_call_id,
            name=t.name,
        )
        for t in turns
    ]


def load_turns(saved: list[SavedTurn]) -> list[Turn]:
    return [
        Turn(
            role=t.role,
            content=[_load_part(p) for p in t.parts],
            tool_calls=[ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in t.calls],
            tool_call_id=t.call_id,
            name=t.name,
        )
        for t in saved
    ]


def answer_turn(response: ResponseObject) -> Turn:
    """The response's output as the assistant turn a follow-up replays (reasoning left out)."""
    texts: list[Part] = []
    calls: list[ToolCall] = []
    for item in response.output:
        if isinstance(item, OutputMessage):
            texts.extend(Text(part.text) for part in item.content if part.text)
        elif isinstance(item, FunctionCall):
            calls.append(ToolCall(id=item.call_id, name=item.name, arguments=item.arguments))
    return Turn(role="assistant", content=texts, tool_calls=calls)


def _not_found(response_id: str, param: str, code: str = "not_found") -> NotFound:
    return NotFound(f"No response with id {response_id!r} (or it has expired).", param=param, code=code)


async def _read(svc: Services, key_id: str, response_id: str, param: str, code: str = "not_found") -> Saved:
    body = await svc.store.get_response(response_id, key_id) if len(response_id) <= MAX_ID else None
    if body is None:
        raise _not_found(response_id, param, code)
    return _DECODER.decode(body)


async def load_history(svc: Services, key_id: str, response_id: str) -> list[Turn]:
    """The turns a follow-up of ``response_id`` starts from; 404 when ``key_id`` has no such response."""
    saved = await _read(svc, key_id, response_id, "previous_response_id", "previous_response_not_found")
    return load_turns(saved.turns)


async def load_response(svc: Services, key_id: str, response_id: str) -> bytes:
    """The stored response object, as JSON; 404 when ``key_id`` has no such response."""
    return bytes((await _read(svc, key_id, response_id, "response_id")).response)


async def store_response(svc: Services, key_id: str, response: ResponseObject, turns: list[Turn]) -> None:
    """Keep a finished response (and the conversation it answered) for ``responses_ttl_hours``. A store failure
    is logged, not raised: the client still gets the answer it waited for."""
    body = encode(Saved(response=Raw(encode(response)), turns=save_turns([*turns, answer_turn(response)])))
    expires_at = time.time() + svc.settings.responses_ttl_hours * 3600
    try:
        await svc.store.put_response(response.id, key_id, body, expires_at)
    except Exception as exc:
        log.warning("could not store response %s: %s", response.id, exc)


async def delete_stored(svc: Services, key_id: str, response_id: str) -> None:
    if len(response_id) > MAX_ID or not await svc.store.delete_response(response_id, key_id):
        raise _not_found(response_id, "response_id")

"""The building blocks of the OpenAPI document (``grok2api/openapi.py`` assembles it): each client face describes
its own operations with these, its schemas generated from the msgspec structs it decodes and encodes with.

This module knows no client face, so every face can use it without knowing the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"
_REF_BASE = REF.format(name="")
TEXT: Schema = {"type": "string"}
FILE: Schema = {"type": "string", "format": "binary"}
# What each error status means, for every operation that may answer it; a face may say more per operation.
STATUSES = {
    400: "The request is malformed or a field is invalid.",
    401: "The API key is missing or wrong (only when one is configured).",
    403: "The client key may not use this model.",
    404: "No such model or route.",
    413: "The body is larger than the gateway accepts.",
    422: "A required tool call or a structured answer did not validate, even after the repair turn.",
    429: "Every eligible account is out of quota or cooling down, or the key's rate limit was hit.",
    502: "grok.com failed, or refused the gateway itself.",
    503: "No usable account.",
    504: "grok.com sent nothing in time.",
}
# The statuses of an operation that asks grok.com for an answer.
UPSTREAM_CALL = (400, 401, 403, 404, 413, 429, 502, 503, 504)


class Schemas:
    """The JSON schemas of ``structs`` (and of every struct they hold) as named components. ``prefix`` namespaces
    the names (``anthropic.Usage``), so that two faces' structs of one name cannot collide in the document."""

    def __init__(self, *structs: type[msgspec.Struct], prefix: str = "") -> None:
        refs, components = msgspec.json.schema_components(structs, ref_template=REF)
        names = {name: prefix + _short(name) for name in components}
        if len(set(names.values())) < len(names):
            raise ValueError(f"two components would share a name among {sorted(names)}")
        self.components: Schema = {names[name]: _renamed(schema, names) for name, schema in components.items()}
        self._refs: dict[type[msgspec.Struct], Schema] = {
            struct: _renamed(ref, names) for struct, ref in zip(structs, refs, strict=True)
        }

    def ref(self, struct: type[msgspec.Struct]) -> Schema:
        return dict(self._refs[struct])

    def component(self, struct: type[msgspec.Struct]) -> Schema:
        """The component of ``struct`` itself, to add what its type cannot say (examples)."""
        schema: Schema = self.components[self._refs[struct]["$ref"].removeprefix(_REF_BASE)]
        return schema


def _short(name: str) -> str:
    """msgspec names a struct by its module's full path when two structs share a name (``a.b.responses_request.
    OutputText``); the module's own name tells them apart well enough (``responses_request.OutputText``)."""
    return ".".join(name.split(".")[-2:])


def _renamed(node: Any, names: Mapping[str, str]) -> Any:
    """``node`` with each ``$ref`` pointing at the renamed component."""
    if isinstance(node, dict):
        return {key: _ref_to(value, names) if key == "$ref" else _renamed(value, names) for key, value in node.items()}
    if isinstance(node, list):
        return [_renamed(item, names) for item in node]
    return node


def _ref_to(ref: str, names: Mapping[str, str]) -> str:
    return REF.format(name=names[ref.removeprefix(_REF_BASE)])


@dataclass(frozen=True)
class Part:
    """One face's share of the document: its paths and the components they reference."""

    paths: Schema
    components: Schema


def json_content(schema: Schema, examples: Mapping[str, Any] | None = None) -> Schema:
    """JSON described by ``schema``; ``examples`` are whole bodies by name (clients and schemathesis use them)."""
    media: Schema = {"schema": schema}
    if examples:
        media["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"application/json": media}


def answer(description: str, content: Schema | None = None) -> Schema:
    return {"description": description, **({"content": content} if content else {})}


def responses(ok: Schema, statuses: Sequence[int], error: Schema, notes: Mapping[int, str] | None = None) -> Schema:
    """The 200 answer ``ok`` and one answer per error status, its body ``error`` (the face's error shape);
    ``notes`` replaces the generic meaning of a status where an operation says more."""
    answers = {"200": ok}
    for status in statuses:
        meaning = (notes or {}).get(status) or STATUSES[status]
        answers[str(status)] = answer(meaning, json_content(error))
    return answers


def json_text(schema: Schema) -> Schema:
    """A string holding JSON that ``schema`` describes (how OpenAPI 3.1 reads a server-sent event's data)."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def data_events(payloads: Sequence[Schema], note: str) -> Schema:
    """Server-sent events, each a ``data:`` line of the JSON of one of ``payloads``, the stream ending with
    ``data: [DONE]`` (an ``event:`` line is allowed and not described)."""
    data = {"type": "string", "if": {"const": "[DONE]"}, "then": True, "else": json_text({"anyOf": list(payloads)})}
    event = {"type": "object", "properties": {"event": TEXT, "data": data}, "required": ["data"]}
    return {"text/event-stream": {"schema": {**event, "description": note}}}


def named_events(events: Mapping[str, Schema], note: str) -> Schema:
    """Server-sent events, each an ``event:`` line naming it (a key of ``events``) and a ``data:`` line of
    the JSON that name's schema describes."""
    kinds = [{"properties": {"event": {"const": name}, "data": json_text(schema)}} for name, schema in events.items()]
    event = {
        "type": "object",
        "properties": {"event": {"enum": list(events)}, "data": TEXT},
        "required": ["event", "data"],
        "anyOf": kinds,
    }
    return {"text/event-stream": {"schema": {**event, "description": note}}}


def tag(struct: type[msgspec.Struct]) -> str:
    """The value of a tagged struct's ``type`` field (the name of its stream event)."""
    return str(struct.__struct_config__.tag)


def path_param(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def operation(summary: str, answers: Schema, **extra: Any) -> Schema:
    return {"summary": summary, "responses": answers, **extra}

"""The OpenAPI building blocks: components named from the structs (namespaced per face, collisions told apart by
module), references that resolve to them, and server-sent events described per event name."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from grok2api.anthropic.errors import ErrorResponse
from grok2api.anthropic.schemas import MessageStop, Ping
from grok2api.openai import responses_objects, responses_request
from grok2api.openapi_schema import Schemas, json_content, named_events, responses, tag


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


class Outer(msgspec.Struct):
    error: ErrorResponse


def test_a_prefix_names_every_component_and_every_reference() -> None:
    schemas = Schemas(Outer, prefix="face.")
    assert set(schemas.components) == {"face.Outer", "face.ErrorResponse", "face.ErrorObject"}
    assert schemas.ref(Outer) == {"$ref": "#/components/schemas/face.Outer"}
    inner = {ref.removeprefix("#/components/schemas/") for ref in refs(schemas.components)}
    assert inner == {"face.ErrorResponse", "face.ErrorObject"}


def test_two_structs_of_one_name_are_told_apart_by_their_module() -> None:
    class Both(msgspec.Struct):
        sent: responses_request.OutputText
        answered: responses_objects.OutputText

    schemas = Schemas(Both, prefix="r.")
    assert {"r.responses_request.OutputText", "r.responses_objects.OutputText"} <= set(schemas.components)
    assert {r.removeprefix("#/components/schemas/") for r in refs(schemas.components)} <= set(schemas.components)


def test_component_is_the_structs_own_schema_to_amend() -> None:
    schemas = Schemas(ErrorResponse, prefix="a.")
    schemas.component(ErrorResponse)["examples"] = ["x"]
    assert schemas.components["a.ErrorResponse"]["examples"] == ["x"]


def test_every_error_status_gets_the_faces_error_body_and_its_meaning() -> None:
    error = {"$ref": "#/components/schemas/E"}
    answers = responses({"description": "ok"}, (400, 404), error, {404: "No such thing."})
    assert set(answers) == {"200", "400", "404"}
    assert answers["404"] == {"description": "No such thing.", "content": json_content(error)}
    assert answers["400"]["description"].startswith("The request is malformed")


@pytest.mark.parametrize(("event", "valid"), [("message_stop", True), ("ping", True), ("response.created", False)])
def test_named_events_pair_each_name_with_its_data(event: str, valid: bool) -> None:
    stream = named_events({tag(MessageStop): {"$ref": "#/x"}, tag(Ping): {"$ref": "#/y"}}, "note")
    schema = stream["text/event-stream"]["schema"]
    assert schema["required"] == ["event", "data"] and schema["description"] == "note"
    assert (event in schema["properties"]["event"]["enum"]) == valid
    names = [kind["properties"]["event"]["const"] for kind in schema["anyOf"]]
    assert names == ["message_stop", "ping"]

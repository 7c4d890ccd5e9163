"""Schemas checked with jsonschema, and JSON answers read the way models write them."""

from __future__ import annotations

import pytest

from grok2api.conversation.validation import SchemaCheck, decode_json, strip_fence
from grok2api.errors import InvalidRequest

SCHEMA = {
    "type": "object",
    "properties": {
        "where": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
    },
    "required": ["where"],
}


def test_errors_name_the_path_of_each_problem() -> None:
    check = SchemaCheck(SCHEMA, "tools", "The parameters of tool 'f'")
    assert check.errors({"where": {"city": "Oslo"}, "tags": ["a"]}) == []
    assert check.errors({"where": {}, "tags": ["a", "c"]}) == [
        "$.tags[1]: 'c' is not one of ['a', 'b']",
        "$.where: 'city' is a required property",
    ]
    assert check.errors([]) == ["$: [] is not of type 'object'"]


def test_many_problems_are_summed_up() -> None:
    check = SchemaCheck({"type": "array", "items": {"type": "integer"}}, "tools", "x")
    errors = check.errors(["a"] * 8)
    assert len(errors) == 6 and errors[-1] == "… and 3 more"


def test_a_broken_schema_is_the_clients_400() -> None:
    with pytest.raises(InvalidRequest) as info:
        SchemaCheck({"type": "object", "properties": {"x": {"type": 5}}}, "response_format", "The schema")
    assert info.value.param == "response_format" and info.value.message.startswith("The schema is not a valid")


def test_fences_and_bad_json() -> None:
    assert strip_fence('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_fence('  {"a": 1}\n') == '{"a": 1}'
    assert strip_fence("```\n[1]```") == "[1]"
    assert decode_json('{"a": [1]}') == ({"a": [1]}, None)
    value, why = decode_json("{'a': 1}")
    assert value is None and why is not None and why.startswith("not valid JSON")

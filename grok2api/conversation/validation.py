"""Checking what Grok wrote against the client's JSON schemas (tool arguments, structured answers), with
``jsonschema``; and reading a JSON answer the way models write it (perhaps inside a code fence)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from ..errors import InvalidRequest

MAX_REPORTED = 5
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)
_DECODER = msgspec.json.Decoder()


class SchemaCheck:
    """One JSON schema, checked once when the request arrives (a broken schema is the client's 400,
    ``param`` names where it was)."""

    def __init__(self, schema: dict[str, Any], param: str, what: str) -> None:
        cls = validator_for(schema)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            raise InvalidRequest(f"{what} is not a valid JSON schema: {exc.message}", param=param) from None
        self.validator: Validator = cls(schema)

    def errors(self, value: Any) -> list[str]:
        """What is wrong with ``value``, as ``path: message`` lines (at most a few); empty when valid."""
        found = sorted(self.validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        lines = [f"{e.json_path}: {e.message}" for e in found[:MAX_REPORTED]]
        if len(found) > MAX_REPORTED:
            lines.append(f"… and {len(found) - MAX_REPORTED} more")
        return lines


def strip_fence(text: str) -> str:
    """The text inside a single surrounding Markdown code fence, else the text itself (trimmed)."""
    match = _FENCE.match(text)
    return (match.group(1) if match else text).strip()


def decode_json(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` for JSON text, ``(None, why)`` otherwise."""
    try:
        return _DECODER.decode(text), None
    except msgspec.DecodeError as exc:
        return None, f"not valid JSON ({exc})"

"""``GET /openapi.json``: an OpenAPI 3.1 document of the ``/v1`` API, assembled from each client face's part
(``openai.openapi``, ``openai.responses_openapi``, ``anthropic.openapi``), whose schemas are generated from the
structs the endpoints decode and encode with, so the document cannot drift from the code.

The one module that knows every face's part. Built once, on the first request, and served without
authentication (it holds no secret).
"""

from __future__ import annotations

from functools import cache

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from . import __version__
from .anthropic import openapi as messages
from .openai import openapi as openai
from .openai import responses_openapi as responses
from .openapi_schema import Part, Schema

DESCRIPTION = (
    "grok2api's OpenAI-compatible API (chat completions, the Responses API, models, images, videos) and "
    "Anthropic-compatible Messages API. Send the key as `Authorization: Bearer <key>` or `x-api-key: <key>` "
    "when the gateway has an API key or client keys. Errors are OpenAI's envelope, except under `/v1/messages`, "
    'where they are Anthropic\'s `{"type": "error", "error": {...}}`.'
)


def merge(parts: list[Part]) -> tuple[Schema, Schema]:
    """The parts' paths and components together; a name given twice must mean the same thing."""
    paths: Schema = {}
    components: Schema = {}
    for part in parts:
        for name, schema in part.components.items():
            if components.setdefault(name, schema) != schema:
                raise ValueError(f"two parts of the OpenAPI document define {name!r} differently")
        for path, item in part.paths.items():
            if path in paths:
                raise ValueError(f"two parts of the OpenAPI document describe {path}")
            paths[path] = item
    return paths, components


@cache
def document() -> Schema:
    """The OpenAPI document (built once)."""
    paths, components = merge([openai.part(), responses.part(), messages.part()])
    return {
        "openapi": "3.1.0",
        "info": {"title": "grok2api", "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        # The key is optional: an open gateway takes requests without one.
        "security": [{}, {"bearer": []}, {"x-api-key": []}],
    }


@cache
def _encoded() -> bytes:
    return msgspec.json.encode(document())


async def openapi_json(request: Request) -> Response:
    return Response(_encoded(), media_type="application/json")

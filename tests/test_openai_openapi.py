"""The OpenAPI document of /v1: it lists every /v1 route, its references resolve, it is served without a key, and
the gateway answers as it says (schemathesis over a live gateway on loopback with the fake grok.com: no 500, only
documented statuses and content types, bodies that match their schemas)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from asgi_client import call, running
from background_gateway import BackgroundGateway
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from grok2api.app import api_routes, create_app
from grok2api.config import BootConfig
from grok2api.openapi import document, merge
from grok2api.openapi_schema import Part

FUZZ_EXAMPLES = 25  # per operation: enough to reach every branch the schemas allow, quick enough for CI


def _routes() -> set[tuple[str, str]]:
    """(path, method) of every /v1 route the app declares, path parameters as OpenAPI writes them."""
    found: set[tuple[str, str]] = set()
    for route in api_routes():
        if isinstance(route, Route) and route.path.startswith("/v1/"):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            found.update((path, m.lower()) for m in route.methods or () if m != "HEAD")
    return found


def test_the_document_lists_every_v1_route() -> None:
    documented = {(path, method) for path, item in document()["paths"].items() for method in item}
    assert documented == _routes()


def test_parts_may_share_a_component_but_not_redefine_it_nor_a_path() -> None:
    shared = {"E": {"type": "object"}}
    paths, components = merge([Part({"/a": {}}, shared), Part({"/b": {}}, {**shared, "F": {}})])
    assert set(paths) == {"/a", "/b"} and set(components) == {"E", "F"}
    with pytest.raises(ValueError, match="'E'"):
        merge([Part({}, shared), Part({}, {"E": {"type": "string"}})])
    with pytest.raises(ValueError, match="/a"):
        merge([Part({"/a": {}}, {}), Part({"/a": {}}, {})])


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_resolves_to_a_schema() -> None:
    doc = document()
    names = set(doc["components"]["schemas"])
    refs = set(_refs(doc))
    assert refs and {ref.removeprefix("#/components/schemas/") for ref in refs} <= names


def _error_answers(paths: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(path, schema reference) of every error answer the document lists."""
    for path, item in paths.items():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                if status != "200":
                    yield path, answer["content"]["application/json"]["schema"]["$ref"]


def test_schemas_come_from_the_structs_the_endpoints_decode() -> None:
    schemas = document()["components"]["schemas"]
    assert schemas["ChatCompletionRequest"]["required"] == ["model", "messages"]
    assert schemas["GenerationRequest"]["properties"]["n"]["anyOf"][0]["maximum"] == 10
    assert set(schemas["ErrorBody"]["properties"]) == {"message", "type", "param", "code"}
    assert schemas["responses.ResponsesRequest"]["required"] == ["model", "input"]
    assert schemas["anthropic.MessagesRequest"]["required"] == ["model", "messages", "max_tokens"]
    assert set(schemas["anthropic.ErrorObject"]["properties"]) == {"type", "message"}
    assert "overloaded_error" in schemas["anthropic.ErrorObject"]["properties"]["type"]["enum"]


def test_errors_are_in_the_shape_of_their_api() -> None:
    """Anthropic's shape under /v1/messages, OpenAI's envelope everywhere else."""
    answers = list(_error_answers(document()["paths"]))
    anthropic = {ref for path, ref in answers if path.startswith("/v1/messages")}
    openai = {ref for path, ref in answers if not path.startswith("/v1/messages")}
    assert anthropic == {"#/components/schemas/anthropic.ErrorResponse"}
    assert openai == {"#/components/schemas/ErrorEnvelope"}


@pytest.mark.parametrize(
    ("path", "events", "done"),
    [
        ("/v1/chat/completions", None, True),
        ("/v1/responses", ["response.created", "response.completed", "response.failed"], False),
        ("/v1/messages", ["message_start", "content_block_delta", "message_stop", "error"], False),
    ],
)
def test_streams_are_documented_as_they_are_sent(path: str, events: list[str] | None, done: bool) -> None:
    """Responses and Messages streams name each event in an ``event:`` line and send no [DONE]; chat's end with
    [DONE] and name nothing."""
    stream = document()["paths"][path]["post"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    named = stream["properties"]["event"].get("enum")
    assert (named is None) == (events is None)
    assert set(events or ()) <= set(named or ())
    assert (stream["properties"]["data"].get("if") == {"const": "[DONE]"}) == done


async def test_the_document_is_served_without_the_api_key(tmp_path: Path) -> None:
    boot = BootConfig(data_dir=tmp_path, environ={"GROK2API_API_KEY": "sk-only-this"}, admin_password="x" * 12)
    app = create_app(boot)
    async with running(app):
        guarded = await call(app, "GET", "/v1/models")
        served = await call(app, "GET", "/openapi.json")
    assert guarded.status == 401
    assert served.status == 200 and served.content_type == "application/json"
    assert served.json() == document()


# ---- schemathesis ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    """The document as a live gateway serves it; heavy-tier accounts, so every model can answer."""
    with BackgroundGateway(tmp_path_factory.mktemp("openapi") / "data") as live:
        assert live.gateway is not None
        gateway = live.gateway
        live.run(lambda: gateway.add_accounts("heavy-openapi-1", "heavy-openapi-2", tier="heavy"))
        yield schemathesis.openapi.from_url(f"{live.url}/openapi.json")


@schemathesis.check
def no_internal_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> None:
    """A 500 is a bug; 502, 503 and 504 are grok.com's or the pool's answers, documented per operation."""
    if response.status_code in (500, 501):
        raise AssertionError(f"{case.method} {case.path} answered {response.status_code}: {response.text[:300]}")


v1 = schemathesis.pytest.from_fixture("v1_schema")


@v1.parametrize()
# schemathesis' multipart bodies draw from the `random` module inside a strategy, which hypothesis deprecates.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_v1_answers_as_its_openapi_document_says(case: schemathesis.Case[Any]) -> None:
    checks = [no_internal_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    case.call_and_validate(checks=checks, timeout=60)

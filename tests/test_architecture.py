"""The layers stay sealed: these import rules are the boundaries the README's architecture section draws."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "grok2api"


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules one file imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _files(*parts: str) -> list[Path]:
    return sorted(PACKAGE.joinpath(*parts).rglob("*.py"))


def _offenders(files: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = {}
    for path in files:
        hits = sorted(m for m in _imports(path) if m.startswith(forbidden))
        if hits:
            bad[str(path.relative_to(PACKAGE))] = hits
    return bad


def test_the_protocol_layer_knows_no_client_api_and_no_gateway() -> None:
    forbidden = (
        "grok2api.openai",
        "grok2api.anthropic",
        "grok2api.conversation",
        "grok2api.errors",
        "grok2api.gateway",
        "grok2api.pool",
        "grok2api.edge",
    )
    assert _offenders(_files("grok"), forbidden) == {}


def test_the_doctor_reaches_grok_com_only_through_the_protocol_layer() -> None:
    forbidden = (
        "grok2api.openai",
        "grok2api.errors",
        "grok2api.gateway",
        "grok2api.pool",
        "grok2api.edge",
        "grok2api.mcp",
        "grok2api.admin",
        "grok2api.services",
    )
    assert _offenders(_files("diagnose"), forbidden) == {}


def test_client_apis_never_touch_the_http_client_or_its_errors() -> None:
    forbidden = ("aiohttp", "grok2api.grok.client", "grok2api.grok.errors", "grok2api.grok.failures")
    faces = _files("openai") + _files("anthropic")
    assert _offenders(faces + [PACKAGE / "mcp.py", PACKAGE / "edge.py"], forbidden) == {}


def test_client_apis_know_nothing_of_each_other() -> None:
    assert _offenders(_files("openai"), ("grok2api.anthropic",)) == {}
    assert _offenders(_files("anthropic"), ("grok2api.openai",)) == {}


def test_the_edge_knows_no_client_api() -> None:
    assert _offenders([PACKAGE / "edge.py"], ("grok2api.openai", "grok2api.anthropic", "grok2api.mcp")) == {}


def test_the_neutral_conversation_knows_no_client_api() -> None:
    forbidden = ("grok2api.openai", "grok2api.anthropic", "grok2api.mcp", "grok2api.edge", "aiohttp", "starlette")
    assert _offenders(_files("conversation"), forbidden) == {}


def test_the_pool_is_policy_over_the_store_not_a_protocol_reader() -> None:
    assert _offenders([PACKAGE / "pool.py"], ("grok2api.grok.client", "grok2api.grok.errors", "aiohttp")) == {}


@pytest.mark.parametrize("module", ["gateway.py", "pool.py", "quota.py"])
def test_the_core_builds_no_upstream_payloads(module: str) -> None:
    source = (PACKAGE / module).read_text()
    for needle in ("modelName", "fileAttachments", "/imagine/", "conversations/new"):
        assert needle not in source, f"{module} mentions {needle!r}"


def test_migrations_import_the_schema_not_the_store() -> None:
    env = PACKAGE.parent / "migrations" / "env.py"
    imported = _imports(env)
    assert "grok2api.store.sql_schema" in imported
    assert "grok2api.store.sql" not in imported


def test_the_openapi_building_blocks_know_no_client_api() -> None:
    """Each face describes its own operations with them; only ``openapi.py``, which assembles the document, knows
    every face."""
    assert _offenders([PACKAGE / "openapi_schema.py"], ("grok2api.openai", "grok2api.anthropic", "grok2api.mcp")) == {}

"""compose.yaml: the services wire together (dependencies, volumes, the store's URL and password), the gateway's
variables are ones grok2api reads, healthchecks and the stop grace are there, FlareSolverr sits behind its profile,
and podman-compose reads the file as compose does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_env import ROOT, environment_names

from grok2api.config import BootConfig
from grok2api.settings import SETTING_NAMES

COMPOSE = ROOT / "compose.yaml"
GATEWAY = "grok2api"
DRAIN_SECONDS = 30  # shutdown_grace_seconds' default: how long the gateway drains after SIGTERM
REQUIRED = {"DB_PASSWORD": "db-secret", "GROK2API_ADMIN_PASSWORD": "admin-secret"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def substituted(value: str, env: dict[str, str]) -> str:
    """``value`` with ``${NAME…}`` replaced as compose would, given ``env``."""
    return _VARIABLE.sub(lambda m: env[m.group(1)], value)


def environment(service: str) -> dict[str, str | None]:
    env: dict[str, str | None] = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return env


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"unreadable duration {duration!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_the_services_are_the_gateway_its_migration_mariadb_and_flaresolverr() -> None:
    assert set(services()) == {GATEWAY, "migrate", "mariadb", "flaresolverr"}


def test_dependencies_name_services_that_always_start() -> None:
    found = services()
    for name, service in found.items():
        for target in service.get("depends_on", {}):
            assert target in found, f"{name} depends on the unknown service {target}"
            assert "profiles" not in found[target], f"{name} depends on {target}, which starts only with a profile"


def test_every_named_volume_is_declared_and_used() -> None:
    declared = set(compose().get("volumes", {}))
    used = {
        mount.split(":", 1)[0]
        for service in services().values()
        for mount in service.get("volumes", [])
        if not mount.startswith((".", "/"))
    }
    assert used == declared


@pytest.mark.parametrize("service", [GATEWAY, "migrate"])
def test_the_gateway_and_the_migration_reach_mariadb_with_its_password(service: str) -> None:
    env = {key: value for key, value in environment(service).items() if value is not None}
    boot = BootConfig.from_env({name: substituted(value, REQUIRED) for name, value in env.items()})
    url = urlsplit(boot.database_url)
    mariadb = {k: substituted(v or "", REQUIRED) for k, v in environment("mariadb").items()}
    assert boot.storage_mode == "mysql" and url.scheme == "mysql"
    assert url.hostname == "mariadb" and url.port == 3306
    assert (url.username, url.password) == (mariadb["MARIADB_USER"], mariadb["MARIADB_PASSWORD"])
    assert url.path.lstrip("/") == mariadb["MARIADB_DATABASE"]


def _gateway_variables() -> list[Any]:
    params = []
    for name in sorted(environment(GATEWAY)):
        pending = name == "GROK2API_FLARESOLVERR_URL" and "flaresolverr_url" not in SETTING_NAMES
        mark = pytest.mark.xfail(
            pending, reason="the flaresolverr_url setting arrives with FlareSolverr support", strict=True
        )
        params.append(pytest.param(name, marks=mark))
    return params


@pytest.mark.parametrize("name", _gateway_variables())
def test_the_gateway_sets_only_variables_grok2api_reads(name: str) -> None:
    assert name in environment_names()


def test_the_gateway_stays_up_through_its_drain_and_is_checked_for_readiness() -> None:
    gateway = services()[GATEWAY]
    assert seconds(gateway["stop_grace_period"]) >= DRAIN_SECONDS + 5
    assert any("/readyz" in part for part in gateway["healthcheck"]["test"])
    assert "healthcheck" in services()["mariadb"]


def test_flaresolverr_starts_only_with_its_profile_and_the_gateway_can_point_at_it() -> None:
    solver = services()["flaresolverr"]
    assert solver["profiles"] == ["flaresolverr"]
    assert solver["image"].startswith("ghcr.io/flaresolverr/flaresolverr")
    assert any("8191" in part for part in solver["healthcheck"]["test"])
    # Passed through from the caller's environment only when set: unset, the setting stays editable in the admin.
    assert "GROK2API_FLARESOLVERR_URL" in environment(GATEWAY)
    assert environment(GATEWAY)["GROK2API_FLARESOLVERR_URL"] is None


def _podman_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (podman-compose needs it; .ci/container_smoke.py installs it)")
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED and not k.startswith("GROK2API_")}
    return subprocess.run(
        [sys.executable, "-m", "podman_compose", "-f", str(COMPOSE), *args, "config"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ([], {GATEWAY, "migrate", "mariadb"}),
        (["--profile", "flaresolverr"], {GATEWAY, "migrate", "mariadb", "flaresolverr"}),
    ],
)
def test_podman_compose_reads_the_file(profile: list[str], expected: set[str]) -> None:
    done = _podman_compose(*profile, env=REQUIRED)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert set(config["services"]) == expected
    gateway_env = config["services"][GATEWAY]["environment"]
    assert gateway_env["GROK2API_ADMIN_PASSWORD"] == REQUIRED["GROK2API_ADMIN_PASSWORD"]
    assert REQUIRED["DB_PASSWORD"] in gateway_env["DATABASE_URL"]


def test_podman_compose_refuses_to_run_without_the_passwords() -> None:
    done = _podman_compose(env={})
    assert done.returncode != 0
    assert "DB_PASSWORD" in done.stderr or "GROK2API_ADMIN_PASSWORD" in done.stderr

"""Boot configuration from the environment, and where the web/ and migrations/ directories are found."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grok2api import resources
from grok2api.config import BootConfig, usable_cpus
from grok2api.resources import resource_dir
from grok2api.serve import hypercorn_config
from grok2api.store.migrate import migrations_dir

SOURCE_ROOT = Path(resources.__file__).resolve().parent.parent


# ---- BootConfig ------------------------------------------------------------------------------------


def test_defaults_from_an_empty_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROK2API_WEB_DIR", raising=False)
    cfg = BootConfig.from_env({})
    assert (cfg.host, cfg.port, cfg.workers, cfg.event_loop) == ("127.0.0.1", 8000, usable_cpus(), "auto")
    assert cfg.data_dir == Path("data")
    assert (cfg.storage_mode, cfg.database_url) == ("file", "")
    assert (cfg.admin_username, cfg.admin_password) == ("admin", "")
    assert cfg.max_body_bytes == 32 * 1024 * 1024
    assert cfg.environ == {}
    assert cfg.web_dir == SOURCE_ROOT / "web"  # the source tree's web/ (editable install)
    # The dataclass defaults agree with from_env.
    plain = BootConfig()
    assert (plain.host, plain.port, plain.workers, plain.max_body_bytes) == (
        cfg.host,
        cfg.port,
        cfg.workers,
        cfg.max_body_bytes,
    )
    assert plain.web_dir == cfg.web_dir


def test_values_are_parsed_from_the_environment() -> None:
    env = {
        "GROK2API_HOST": " 0.0.0.0 ",
        "GROK2API_PORT": "9001",
        "GROK2API_WORKERS": "4",
        "GROK2API_DATA_DIR": "/srv/g2a",
        "STORAGE_MODE": " MySQL ",
        "DATABASE_URL": "  mysql://u:p@db:3306/g2a  ",
        "GROK2API_ADMIN_USERNAME": "root",
        "GROK2API_ADMIN_PASSWORD": " spaced pw ",
        "GROK2API_MAX_BODY_BYTES": "1048576",
        "GROK2API_EVENT_LOOP": " AsyncIO ",
        "UNRELATED": "x",
    }
    cfg = BootConfig.from_env(env)
    assert (cfg.host, cfg.port, cfg.workers) == ("0.0.0.0", 9001, 4)
    assert cfg.data_dir == Path("/srv/g2a")
    assert cfg.storage_mode == "mysql"
    assert cfg.database_url == "mysql://u:p@db:3306/g2a"
    assert cfg.admin_username == "root"
    assert cfg.admin_password == " spaced pw "  # a password is taken verbatim
    assert cfg.max_body_bytes == 1048576
    assert cfg.event_loop == "asyncio"
    assert cfg.environ == env


def test_blank_values_fall_back_to_defaults() -> None:
    blank = {"GROK2API_HOST": "  ", "GROK2API_PORT": "", "GROK2API_WORKERS": " ", "STORAGE_MODE": ""}
    cfg = BootConfig.from_env({**blank, "GROK2API_DATA_DIR": ""})
    assert (cfg.host, cfg.port, cfg.workers, cfg.storage_mode, cfg.data_dir) == (
        "127.0.0.1",
        8000,
        usable_cpus(),
        "file",
        Path("data"),
    )


@pytest.mark.parametrize(("raw", "log_format"), [("", "text"), (" JSON ", "json"), ("text", "text")])
def test_log_format_is_text_or_json(raw: str, log_format: str) -> None:
    assert BootConfig.from_env({"GROK2API_LOG_FORMAT": raw}).log_format == log_format


def test_an_unknown_log_format_is_refused_at_boot() -> None:
    with pytest.raises(ValueError, match="GROK2API_LOG_FORMAT must be text or json"):
        BootConfig.from_env({"GROK2API_LOG_FORMAT": "logfmt"})


def test_workers_default_to_the_cpus_the_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert usable_cpus() == 3
    assert BootConfig.from_env({}).workers == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(), raising=False)
    assert usable_cpus() == 1  # never zero workers


@pytest.mark.parametrize(("raw", "workers"), [("0", 1), ("-3", 1), ("1", 1), (" 8 ", 8)])
def test_workers_is_at_least_one(raw: str, workers: int) -> None:
    assert BootConfig.from_env({"GROK2API_WORKERS": raw}).workers == workers


@pytest.mark.parametrize("name", ["GROK2API_PORT", "GROK2API_WORKERS", "GROK2API_MAX_BODY_BYTES"])
def test_non_numeric_numbers_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        BootConfig.from_env({name: "lots"})


def test_environ_is_a_copy() -> None:
    env = {"GROK2API_PORT": "9000"}
    cfg = BootConfig.from_env(env)
    env["GROK2API_PORT"] = "1"
    env["NEW"] = "x"
    assert cfg.environ == {"GROK2API_PORT": "9000"}


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GROK2API_PORT", "8123")
    monkeypatch.setenv("GROK2API_WEB_DIR", str(tmp_path / "my-web"))
    cfg = BootConfig.from_env()
    assert cfg.port == 8123
    assert cfg.web_dir == tmp_path / "my-web"
    assert cfg.environ["GROK2API_PORT"] == "8123"


def test_web_dir_override_from_the_given_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GROK2API_WEB_DIR", str(tmp_path / "from-os-environ"))
    cfg = BootConfig.from_env({"GROK2API_WEB_DIR": str(tmp_path / "from-mapping")})
    assert cfg.web_dir == tmp_path / "from-mapping"  # the mapping given wins; os.environ is not consulted
    assert BootConfig.from_env({"GROK2API_WEB_DIR": "   "}).web_dir == SOURCE_ROOT / "web"


# ---- resource_dir ------------------------------------------------------------------------------


def test_source_tree_directories_are_found() -> None:
    assert resource_dir("web", "GROK2API_WEB_DIR", {}) == SOURCE_ROOT / "web"
    assert resource_dir("migrations", "GROK2API_MIGRATIONS_DIR", {}) == SOURCE_ROOT / "migrations"
    assert (SOURCE_ROOT / "migrations" / "env.py").is_file()


def test_override_wins_even_when_missing(tmp_path: Path) -> None:
    target = tmp_path / "does-not-exist"
    assert resource_dir("web", "GROK2API_WEB_DIR", {"GROK2API_WEB_DIR": f"  {target}  "}) == target


def test_override_from_os_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GROK2API_MIGRATIONS_DIR", str(tmp_path / "mig"))
    assert resource_dir("migrations", "GROK2API_MIGRATIONS_DIR") == tmp_path / "mig"
    assert migrations_dir() == tmp_path / "mig"
    monkeypatch.delenv("GROK2API_MIGRATIONS_DIR")
    assert migrations_dir() == SOURCE_ROOT / "migrations"


def test_installed_share_directory_then_cwd_then_source_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "site-packages"  # an installed package: no web/ beside it
    prefix = tmp_path / "prefix"
    cwd = tmp_path / "cwd"
    for d in (source, prefix, cwd):
        d.mkdir()
    monkeypatch.setattr(resources, "_SOURCE_ROOT", source)
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.chdir(cwd)

    # Nothing anywhere: the source-tree path is returned (so error messages name a sensible place).
    assert resource_dir("web", "GROK2API_WEB_DIR", {}) == source / "web"

    (cwd / "web").mkdir()
    assert resource_dir("web", "GROK2API_WEB_DIR", {}) == cwd / "web"

    shared = prefix / "share" / "grok2api" / "web"
    shared.mkdir(parents=True)
    assert resource_dir("web", "GROK2API_WEB_DIR", {}) == shared  # the installed copy beats the cwd

    (source / "web").mkdir()
    assert resource_dir("web", "GROK2API_WEB_DIR", {}) == source / "web"  # the source tree beats both

    # A file of that name is not a directory and is skipped.
    (cwd / "migrations").write_text("not a directory")
    assert resource_dir("migrations", "GROK2API_MIGRATIONS_DIR", {}) == source / "migrations"


def test_operations_settings() -> None:
    cfg = BootConfig.from_env({})
    assert (cfg.store_timeout, cfg.shutdown_grace, cfg.header_timeout, cfg.body_timeout) == (2.0, 30.0, 10.0, 30.0)
    assert cfg.max_connections == 1000
    env = {
        "GROK2API_STORE_TIMEOUT_SECONDS": "0.5",
        "GROK2API_SHUTDOWN_GRACE_SECONDS": "60",
        "GROK2API_HEADER_TIMEOUT_SECONDS": "5",
        "GROK2API_BODY_TIMEOUT_SECONDS": "15",
        "GROK2API_MAX_CONNECTIONS": "200",
    }
    cfg = BootConfig.from_env(env)
    assert (cfg.store_timeout, cfg.shutdown_grace, cfg.header_timeout, cfg.body_timeout) == (0.5, 60.0, 5.0, 15.0)
    assert cfg.max_connections == 200


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "100000"])
def test_timeouts_must_be_positive_seconds(raw: str) -> None:
    with pytest.raises(ValueError):
        BootConfig.from_env({"GROK2API_BODY_TIMEOUT_SECONDS": raw})


@pytest.mark.parametrize(("raw", "on"), [("", True), ("off", False), ("0", False), (" ON ", True), ("true", True)])
def test_the_access_log_can_be_switched_off(raw: str, on: bool) -> None:
    boot = BootConfig.from_env({"GROK2API_ACCESS_LOG": raw})
    assert boot.access_log is on
    assert hypercorn_config(boot, "127.0.0.1:1").accesslog is None  # the edge writes the line (test_edge_layer)


def test_an_unknown_access_log_value_is_refused_at_boot() -> None:
    with pytest.raises(ValueError, match="GROK2API_ACCESS_LOG must be on or off"):
        BootConfig.from_env({"GROK2API_ACCESS_LOG": "maybe"})

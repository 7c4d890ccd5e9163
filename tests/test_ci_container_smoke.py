"""The parts of .ci/container_smoke.py that decide what the image build is given: the host's pip configuration
(rendered into one file), the host paths it names (mounted read-only), the apt sources for the base, and
container limits no higher than the caller's own."""

from __future__ import annotations

import importlib.util
import resource
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "container_smoke.py"


@pytest.fixture(scope="module")
def smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("container_smoke", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_pip_config_listing_becomes_sections_with_variables_as_global(smoke: ModuleType) -> None:
    listing = (
        ":env:.default-timeout='180'\n"
        "global.index-url='https://mirror.example/simple'\n"
        "install.trusted-host='mirror.example'\n"
        "not a setting\n"
    )
    assert smoke.parse_pip_config(listing) == {
        "global.default-timeout": "180",
        "global.index-url": "https://mirror.example/simple",
        "install.trusted-host": "mirror.example",
    }


def test_local_paths_names_what_exists_and_a_local_index_with_its_files(smoke: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "index" / "simple").mkdir(parents=True)
    (tmp_path / "wheels").mkdir()
    value = f"file://{tmp_path}/index/simple {tmp_path}/wheels {tmp_path}/missing https://pypi.org/simple"
    assert smoke.local_paths(value) == [tmp_path / "index", tmp_path / "wheels"]


def test_the_build_gets_the_config_file_the_ca_bundle_and_the_paths_read_only(
    smoke: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("certificates")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setattr(smoke, "pip_config", lambda: {"global.find-links": str(wheels), "global.timeout": "60"})
    monkeypatch.setattr(smoke, "ca_bundle", lambda: str(bundle))
    conf = tmp_path / "pip.conf"
    args = smoke.build_pip_mounts(conf)
    volumes = {args[i + 1] for i in range(0, len(args), 2) if args[i] == "--volume"}
    assert volumes == {f"{conf}:/etc/pip.conf:ro", f"{bundle}:{bundle}:ro", f"{wheels}:{wheels}:ro"}
    text = conf.read_text()
    assert text.startswith("[global]\n") and f"cert = {bundle}" in text and f"find-links = {wheels}" in text


def test_apt_sources_fall_back_to_debian_when_the_host_has_none_for_the_suite(smoke: ModuleType) -> None:
    assert smoke.apt_sources("no-such-suite") == ["http://deb.debian.org/debian"]


def test_container_limits_never_exceed_the_callers(smoke: ModuleType) -> None:
    args = smoke.ulimit_args()
    limits = dict(a.split("=", 1) for a in args if a != "--ulimit")
    nofile = int(limits["nofile"].split(":")[1])
    nproc = int(limits["nproc"].split(":")[1])
    assert nofile <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    assert nproc <= (hard_nproc if hard_nproc != resource.RLIM_INFINITY else 32768)

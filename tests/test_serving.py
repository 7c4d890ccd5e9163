"""``grok2api serve``: the event loop it picks, hypercorn's configuration, and a real run with workers."""

from __future__ import annotations

import gc
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from grok2api import serving
from grok2api.serving import YOUNG_THRESHOLD, tune_gc


def _without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "uvloop" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_auto_picks_uvloop_when_installed_else_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = importlib.util.find_spec("uvloop") is not None
    assert serving.worker_class("auto") == ("uvloop" if installed else "asyncio")
    assert serving.worker_class("asyncio") == "asyncio"
    _without_uvloop(monkeypatch)
    assert serving.worker_class("auto") == "asyncio"


def test_asking_for_a_missing_or_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="one of auto, uvloop, asyncio"):
        serving.worker_class("tokio")
    _without_uvloop(monkeypatch)
    with pytest.raises(ValueError, match=r"pip install 'grok2api\[fast\]'"):
        serving.worker_class("uvloop")


def test_the_loop_factory_follows_the_worker_class() -> None:
    assert serving.loop_factory("asyncio") is None
    if importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed")
    import uvloop

    factory = serving.loop_factory("uvloop")
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop) and type(loop).__module__ == "grok2api.uvloop_loop"
    finally:
        loop.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _health(url: str, deadline: float, proc: subprocess.Popen[bytes]) -> bytes:
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited early"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body: bytes = resp.read()
                return body
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in time")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts worker processes through /proc")
def test_serve_runs_the_asked_number_of_workers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROK2API_")}
    env.update(GROK2API_DATA_DIR=str(tmp_path), GROK2API_ADMIN_PASSWORD="serve-test-password", GROK2API_WORKERS="2")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "grok2api", "serve", "--bind", f"127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        body = _health(f"http://127.0.0.1:{port}/healthz", time.monotonic() + 60, proc)
        assert b'"status":"ok"' in body
        deadline = time.monotonic() + 30
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_children(proc.pid)) >= 2  # the supervisor forked both workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = log_path.read_text(errors="replace")
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    assert f"2 worker process(es), {loop} event loop" in log, log[-2000:]


def test_a_bad_event_loop_setting_stops_serve_with_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROK2API_")}
    env.update(GROK2API_DATA_DIR=str(tmp_path), GROK2API_EVENT_LOOP="tokio")
    done = subprocess.run(
        [sys.executable, "-m", "grok2api", "serve", "--bind", f"127.0.0.1:{_free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "GROK2API_EVENT_LOOP must be one of auto, uvloop, asyncio" in done.stderr


def test_tune_gc_freezes_what_exists_and_spaces_out_young_collections() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        app = [object() for _ in range(10)]  # something that exists when the worker has built its app
        assert any(o is app for o in gc.get_objects())
        tune_gc()
        assert not any(o is app for o in gc.get_objects())  # no collection walks it again
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

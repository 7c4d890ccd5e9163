"""Logs an operator can use: request ids (made or taken from the client) in the answer and in every line a request
logs, text or JSON lines, one line per failed upstream attempt, and a ``grok2api serve`` whose start says only what
matters, each line once."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import select
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from grok2api.logs import (
    REQUEST_ID,
    TEXT_FORMAT,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    formatter,
    log_access,
    request_id_from,
    skip_unused_record_fields,
)
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

SOURCE_ROOT = Path(__file__).resolve().parent.parent


# ---- request ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["abc", "A.b_c-9", "x" * 128, "0f3a9c2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"])
def test_a_sane_client_request_id_is_kept(given: str) -> None:
    assert request_id_from(given) == given


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", "semi;colon", "new\nline", "ünïcode", "a/b"])
def test_anything_else_gets_a_new_request_id(given: str | None) -> None:
    made = request_id_from(given)
    assert made != given and re.fullmatch(r"[0-9a-f]{32}", made)
    assert request_id_from(given) != made  # a new one each time


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("grok2api.test", logging.WARNING, __file__, 1, message, args or None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    RequestIdFilter().filter(record)
    return record


def test_text_lines_carry_the_request_id_and_extra_fields() -> None:
    token = REQUEST_ID.set("req-7")
    try:
        line = TextFormatter().format(_record("attempt %d failed", 2, account_id=5, mode="fast"))
    finally:
        REQUEST_ID.reset(token)
    assert re.fullmatch(r"\S+ \S+ WARNING grok2api\.test \[req-7\]: attempt 2 failed account_id=5 mode=fast", line)
    outside = TextFormatter().format(_record("no request"))
    assert outside.endswith(" WARNING grok2api.test: no request")


def test_json_lines_are_one_object_each() -> None:
    token = REQUEST_ID.set("req-8")
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            record = _record("it %s\nbroke", "really", verdict="server", duration_ms=12)
            record.exc_info = sys.exc_info()
    finally:
        REQUEST_ID.reset(token)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    obj = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj.pop("time"))
    exception = obj.pop("exception")
    assert "RuntimeError: boom" in exception and "Traceback" in exception
    assert obj == {
        "level": "WARNING",
        "logger": "grok2api.test",
        "message": "it really\nbroke",
        "request_id": "req-8",
        "verdict": "server",
        "duration_ms": 12,
    }
    assert json.loads(JsonFormatter().format(_record("outside")))["request_id"] is None


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        formatter("xml")


def test_the_access_line_reads_as_hypercorns_did_and_carries_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hypercorn.access")
    caplog.handler.addFilter(RequestIdFilter())  # as the gateway's handlers stamp their records
    scope = {"method": "POST", "path": "/v1/chat/completions", "http_version": "1.1", "client": ("10.0.0.7", 51234)}
    token = REQUEST_ID.set("req-9")
    try:
        log_access(scope, "200", "354", 0.25, "curl/8.5")
        log_access({**scope, "client": None}, "-", "-", 1.5, "-")
    finally:
        REQUEST_ID.reset(token)
    first, second = caplog.records
    assert first.name == "hypercorn.access" and getattr(first, "request_id", "") == "req-9"
    assert first.getMessage() == '10.0.0.7:51234 "POST /v1/chat/completions 1.1" 200 354 0.250000s "curl/8.5"'
    assert second.getMessage() == 'None "POST /v1/chat/completions 1.1" - - 1.500000s "-"'


# ---- a live gateway -------------------------------------------------------------------------------


@pytest.fixture
def request_ids(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog, its records stamped with their request id as the gateway's own handlers stamp them."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    return caplog


async def _post(gateway: LiveGateway, path: str, body: Any, **headers: str) -> tuple[int, Mapping[str, str]]:
    async with aiohttp.ClientSession() as http, http.post(gateway.url + path, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.copy()  # case-insensitive


async def test_every_answer_carries_its_request_id(gateway: LiveGateway) -> None:
    status, headers = await _post(gateway, "/v1/chat/completions", {}, **{"X-Request-ID": "client.id_1-x"})
    assert status == 400 and headers["X-Request-ID"] == "client.id_1-x"
    status, headers = await _post(gateway, "/v1/nowhere", {}, **{"X-Request-ID": "not valid!"})
    assert status == 404 and re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    status, headers = await _post(gateway, "/api/login", {"username": "admin", "password": "wrong"})
    assert status == 401 and re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/manage", allow_redirects=False) as resp:
            assert resp.status == 303 and "X-Request-ID" in resp.headers
        # Browsers may read it from /v1 answers too.
        async with http.get(gateway.url + "/v1/models", headers={"Origin": "https://chat.example"}) as resp:
            assert "x-request-id" in resp.headers["Access-Control-Expose-Headers"].lower()


async def test_an_internal_error_is_logged_and_answered_with_its_request_id(
    gateway: LiveGateway, request_ids: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model: str) -> None:
        raise RuntimeError("not a client's problem")

    monkeypatch.setattr(gateway.services.catalog, "find", broken)
    chat = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "hi"}]}
    status, headers = await _post(gateway, "/v1/chat/completions", chat, **{"X-Request-ID": "oops-1"})
    assert status == 500 and headers["X-Request-ID"] == "oops-1"
    (logged,) = [r for r in request_ids.records if r.exc_info]
    assert getattr(logged, "request_id", "") == "oops-1"


async def test_every_line_of_a_request_has_its_id_and_each_failed_attempt_one_line(
    gateway: LiveGateway, fake: FakeGrok, request_ids: pytest.LogCaptureFixture
) -> None:
    await gateway.add_accounts("tok1", "tok2")
    await gateway.settings(max_attempts=2)
    fake.push_fault("mgw-503", count=2)
    chat = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "hi"}]}
    status, headers = await _post(gateway, "/v1/chat/completions", chat, **{"X-Request-ID": "trace-42"})
    assert status == 502 and headers["X-Request-ID"] == "trace-42"
    mine = [r for r in request_ids.records if getattr(r, "request_id", "") == "trace-42"]
    attempts = [r for r in mine if r.name == "grok2api.gateway"]
    assert len(attempts) == 2  # one line per failed attempt, no more
    accounts = {a.token: a.id for a in await gateway.services.store.list_accounts()}
    for n, record in enumerate(attempts, start=1):
        fields: Any = record.__dict__
        assert fields["attempt"] == n and fields["mode"] == "fast" and fields["verdict"] == "server"
        assert fields["account_id"] in accounts.values() and fields["duration_ms"] >= 0
    assert {r.__dict__["account_id"] for r in attempts} == set(accounts.values())
    assert any(r.name == "grok2api.edge" and "502" in r.getMessage() for r in mine)
    # Every line logged while the request ran is the request's; nothing leaks into the next one.
    status, _ = await _post(gateway, "/v1/chat/completions", {"model": "nope", "messages": []})
    later = [r for r in request_ids.records if r not in mine and r.name.startswith("grok2api")]
    assert later and all(getattr(r, "request_id", "") not in ("", "trace-42") for r in later)


async def test_a_stream_cut_mid_answer_logs_its_attempt_once(
    gateway: LiveGateway, request_ids: pytest.LogCaptureFixture
) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_chunk_timeout=0.3)
    chat = {
        "model": "grok-3-fast",
        "messages": [{"role": "user", "content": "hi [[fault:stall-mid:2]]"}],
        "stream": True,
    }
    await _post(gateway, "/v1/chat/completions", chat, **{"X-Request-ID": "cut-1"})
    attempts = [r for r in request_ids.records if r.name == "grok2api.gateway"]
    assert len(attempts) == 1 and getattr(attempts[0], "request_id", "") == "cut-1"
    assert "mid-answer" in attempts[0].getMessage() and attempts[0].__dict__["verdict"] == "server"
    assert attempts[0].__dict__["duration_ms"] >= 250


# ---- grok2api serve ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_logs_json_lines_once_without_alembic_chatter(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GROK2API_", "STORAGE_MODE", "DATABASE_URL"))},
        "PYTHONPATH": str(SOURCE_ROOT),
        "GROK2API_DATA_DIR": str(tmp_path / "data"),
        "GROK2API_ADMIN_PASSWORD": "serve-test-password",
        "GROK2API_LOG_FORMAT": "json",
        "GROK2API_UPSTREAM_URL": "http://127.0.0.1:9",  # never reached: no account
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grok2api",
        "serve",
        "--bind",
        f"127.0.0.1:{port}",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline and proc.returncode is None, "the gateway did not start"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz?secret=x") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            async with http.get(f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "probe-1"}) as resp:
                assert resp.status == 200 and resp.headers["X-Request-ID"] == "probe-1"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = [json.loads(line) for line in (out + err).decode().splitlines()]  # every line is one JSON object
    assert not [line for line in lines if line["logger"].startswith("alembic")]
    assert any(line["logger"] == "grok2api.store" and "schema upgraded" in line["message"] for line in lines)
    running = [line for line in lines if "Running on" in line["message"]]
    assert len(running) == 1 and running[0]["logger"] == "grok2api.serve"  # the built-in server's, in one worker
    probes = [line for line in lines if line["request_id"] == "probe-1"]
    assert len(probes) == 1 and probes[0]["logger"] == "hypercorn.access"
    assert '"GET /healthz' in probes[0]["message"] and " 200 " in probes[0]["message"]
    assert not any("secret=x" in line["message"] for line in lines)  # no query strings in the access log


@pytest.mark.parametrize("created", [1796100000.0, 1796100000.999, 1796100001.0005, 1796100000.25, 1796186400.5])
def test_text_lines_are_stamped_as_the_standard_formatter_stamps_them(created: float) -> None:
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for when in (created, created + 0.1, created + 1.0, created):  # the second is cached, then left, then met again
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = when, int((when - int(when)) * 1000)
        assert ours.formatTime(record) == standard.formatTime(record)
    assert ours.formatTime(record, "%H") == standard.formatTime(record, "%H")


def test_records_skip_the_fields_no_format_shows_and_lines_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    # logging's own defaults (a gateway started in this process earlier may have switched them), restored after
    monkeypatch.setattr(logging, "_srcfile", os.path.normcase(logging.addLevelName.__code__.co_filename))
    for name in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, True)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("grok2api.test.fields")
    logger.addHandler(Keep())
    logger.propagate = False
    try:
        logger.warning("before %d", 1)
        skip_unused_record_fields()
        logger.warning("after %d", 2)
    finally:
        logger.handlers.clear()
    before, after = seen
    assert before.lineno > 0 and before.threadName
    assert (after.lineno, after.threadName, after.processName) == (0, None, None)  # not looked up
    text, json_format = TextFormatter(), JsonFormatter()
    for record in (before, after):
        assert text.format(record).endswith(f"WARNING grok2api.test.fields: {record.getMessage()}")
        assert json.loads(json_format.format(record))["message"] == record.getMessage()


# ---- the writer thread ---------------------------------------------------------------------------------

_CHILD = """
import json, logging, os, sys, time
from grok2api import logs
logs.setup_logging({fmt!r})
log = logging.getLogger("grok2api.child")
{body}
"""


def _child(body: str, fmt: str = "json", **pipes: Any) -> Any:
    import subprocess

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROK2API_")}, "PYTHONPATH": str(SOURCE_ROOT)}
    code = _CHILD.format(fmt=fmt, body=body)
    return subprocess.Popen([sys.executable, "-c", code], env=env, **pipes)


def test_lines_written_by_the_thread_keep_their_request_id_arguments_and_traceback() -> None:
    import subprocess

    body = """
token = logs.REQUEST_ID.set("rid-7")
log.info("turn %d of %s", 3, "tok", extra={"account_id": 12})
try:
    1 / 0
except ZeroDivisionError:
    log.exception("it failed")
logs.REQUEST_ID.reset(token)
log.warning("outside")
"""
    child = _child(body, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    lines = [json.loads(line) for line in err.decode().splitlines()]  # every line written by exit
    turn, failed, outside = lines
    assert (turn["message"], turn["request_id"], turn["account_id"]) == ("turn 3 of tok", "rid-7", 12)
    assert failed["request_id"] == "rid-7" and "ZeroDivisionError" in failed["exception"]
    assert outside["request_id"] is None and outside["level"] == "WARNING"


def test_a_stalled_reader_of_stderr_never_holds_up_the_code_that_logs() -> None:
    # Nobody reads the child's stderr: a pipe holds 64 KiB, the child logs some 3 MB. Written on the logging thread
    # the first full pipe would block it for good; handed over, the calls return and the surplus is dropped.
    import subprocess

    body = """
handed = next(h for h in logging.getLogger().handlers if isinstance(h, logs._HandOver))
for i in range(30_000):
    log.warning("line %d %s", i, "x" * 80)
print(json.dumps({"returned": True, "dropped": handed.dropped}), flush=True)
os._exit(0)  # (not through atexit: the writer thread is stuck on the full pipe)
"""
    child = _child(body, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)  # a child stuck logging says nothing: bounded
        said = json.loads(child.stdout.readline() or b"{}") if ready else {}
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=60)
    assert said.get("returned") is True and said["dropped"] > 0


def test_lines_dropped_while_too_many_waited_are_counted_in_a_line_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import collections

    from grok2api import logs

    monkeypatch.setattr(logs, "LOG_QUEUE_SIZE", 2)
    lines: collections.deque[logging.LogRecord] = collections.deque()
    handed = logs._HandOver(lines)
    logger = logging.getLogger("grok2api.test.handover")
    logger.addHandler(handed)
    logger.propagate = False
    try:
        for n in range(5):
            logger.warning("line %d", n)
        assert handed.dropped == 3 and len(lines) == 2
        lines.clear()  # the writer caught up
        logger.warning("line %d", 5)
    finally:
        logger.handlers.clear()
    notice, line = lines
    assert notice.getMessage().startswith("3 log line(s) dropped") and line.getMessage() == "line 5"
    assert handed.dropped == 0

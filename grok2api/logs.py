"""Logs an operator can use: every line a request causes carries its request id, and lines are text or JSON.

The edge (``edge_layer``) puts each request's id in ``REQUEST_ID``; ``RequestIdFilter``, on every handler set up
here, copies it onto each record. Fields a call passes in ``extra={...}`` are kept: as ``key=value`` after a text
line, as members of a JSON line.

Lines are written by a thread of their own (``setup_logging``): a log call on the event loop only hands its record
over, so a slow or stalled reader of stderr (a full pipe, a log collector that fell behind) or a slow disk never holds
up a worker. Past ``LOG_QUEUE_SIZE`` records waiting, further ones are dropped and counted, and a line says how many
once there is room again.

The access line (``log_access``, one per request) is the edge's too, written in the request's task (so it carries the
request id) under the logger name ``hypercorn.access`` and in the format hypercorn's own line had, which this one
replaces: hypercorn built a dictionary of every header for each line, written or not.
"""

from __future__ import annotations

import atexit
import collections
import copy
import json
import logging
import random
import re
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

from starlette.types import Scope

LOG_FORMATS = ("text", "json")
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")
REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID = 128
_CLIENT_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID}}}")
# What every LogRecord has (and what formatting adds): anything else on a record came in ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"


def request_id_from(given: str | None) -> str:
    """The client's id when it is a sane one (at most 128 letters, digits, ``.``, ``_``, ``-``), else a new one:
    128 random bits in hex. An id only correlates lines, it guards nothing, so it need not cost a system call for
    the kernel's randomness as a ``uuid4`` does."""
    if given and _CLIENT_ID.fullmatch(given):
        return given
    return f"{random.getrandbits(128):032x}"


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id``: the current request's id, or "" outside any request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = REQUEST_ID.get()
        return True


ACCESS = logging.getLogger("hypercorn.access")
# client "method path without its query string (which may carry secrets) protocol" status bytes seconds "user agent"
ACCESS_FORMAT = '%s "%s %s %s" %s %s %.6fs "%s"'


def log_access(scope: Scope, status: str, length: str, seconds: float, agent: str) -> None:
    """Write one request's access line (``status`` and ``length`` are ``-`` when unknown); the caller checked
    ``ACCESS.isEnabledFor(logging.INFO)``."""
    method, path, version = scope["method"], scope["path"], scope.get("http_version", "ws")
    ACCESS.info(ACCESS_FORMAT, _remote(scope.get("client")), method, path, version, status, length, seconds, agent)


def _remote(client: Sequence[object] | None) -> str | None:
    """The client as hypercorn's access line names it: ``host:port``."""
    if client is None:
        return None
    if len(client) == 2:
        return f"{client[0]}:{client[1]}"
    if len(client) == 1:
        return str(client[0])
    return f"<???{client}???>"


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "request_tag"}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id]: message key=value…``"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: tuple[int, str] = (-1, "")  # the last second formatted: one line per request reuses it

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, stamp = self._second
        if cached != second:
            stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, stamp)  # one assignment: a thread that logs sees the pair whole
        return f"{stamp},{int(record.msecs):03d}"  # logging.Formatter.default_msec_format

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", "")
        record.request_tag = f" [{request_id}]" if request_id else ""
        line = super().format(record)
        extras = extra_fields(record)
        if not extras:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the fields
        fields = " ".join(f"{k}={v}" for k, v in extras.items())
        return f"{head} {fields}{sep}{tail}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``request_id``
    (null outside a request), the record's extra fields, and ``exception`` when there is a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or None,
        }
        for key, value in extra_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"the log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def handler(target: logging.Handler, log_format: str) -> logging.Handler:
    target.setFormatter(formatter(log_format))
    target.addFilter(RequestIdFilter())
    return target


LOG_QUEUE_SIZE = 10_000  # records waiting for the writer thread; past it they are dropped and counted
WRITE_EVERY = 0.05  # seconds between the writer's rounds: it is never woken per line
_TRACEBACKS = logging.Formatter()


class _HandOver(logging.Handler):
    """Leaves a record for the writer thread and returns at once, without waking it (a wake per line, a thread
    hand-off and the GIL passed back and forth, cost more CPU than the write itself); past ``LOG_QUEUE_SIZE`` waiting
    the record is dropped and counted. The record is fixed first (its request id, its message with the arguments
    filled in, its traceback as text), as the writer reads it later on its own thread."""

    def __init__(self, lines: collections.deque[logging.LogRecord]) -> None:
        super().__init__()
        self.lines = lines
        self.dropped = 0
        self.addFilter(RequestIdFilter())  # the request's context is this thread's, not the writer's

    def emit(self, record: logging.LogRecord) -> None:
        lines = self.lines
        if len(lines) >= LOG_QUEUE_SIZE:
            self.dropped += 1
            return
        if self.dropped:
            lines.append(self._dropped_line())
            self.dropped = 0
        record = copy.copy(record)  # other handlers may hold the same record
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        lines.append(record)  # (a deque's append and popleft are safe between threads)

    def _dropped_line(self) -> logging.LogRecord:
        message = f"{self.dropped} log line(s) dropped: their reader (stderr or the log file) fell behind"
        fields = {"name": "grok2api.logs", "levelno": logging.WARNING, "levelname": "WARNING", "msg": message}
        return logging.makeLogRecord({**fields, "request_id": ""})


class _Writer(threading.Thread):
    """Every ``WRITE_EVERY`` seconds, writes what was left to the real handlers (stderr, the log file)."""

    def __init__(self, lines: collections.deque[logging.LogRecord], targets: Sequence[logging.Handler]) -> None:
        super().__init__(name="grok2api-log-writer", daemon=True)
        self.lines = lines
        self.targets = tuple(targets)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(WRITE_EVERY):
            self.write()
        self.write()

    def write(self) -> None:
        lines = self.lines
        while lines:
            record = lines.popleft()
            for target in self.targets:
                if record.levelno >= target.level:
                    target.handle(record)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


class _Current:
    """The process's log writer, once ``setup_logging`` started it."""

    writer: _Writer | None = None


def setup_logging(log_format: str = "text", log_file: str = "") -> None:
    """Log to stderr (and to a rotating file, 10 MB x 5, when ``log_file`` is set) in ``log_format``, written by a
    thread of their own (see the module docstring), unless the host process configured logging already (tests,
    embedding). Either way alembic's INFO chatter (its plugins, its DDL mode, each revision, at every start of
    every worker) stays out: the store says in one line when it upgraded the schema."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    root = logging.getLogger()
    if root.handlers:
        return
    root.setLevel(logging.INFO)
    targets = [handler(logging.StreamHandler(), log_format)]
    if log_file:
        from logging.handlers import RotatingFileHandler

        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        rotating = RotatingFileHandler(log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8")
        targets.append(handler(rotating, log_format))
    lines: collections.deque[logging.LogRecord] = collections.deque()
    writer = _Writer(lines, targets)
    writer.start()
    _Current.writer = writer
    atexit.register(stop_writing)
    root.addHandler(_HandOver(lines))
    skip_unused_record_fields()


def writer_handlers() -> tuple[logging.Handler, ...]:
    """The handlers the writer thread writes to (none when ``setup_logging`` left logging to the host process)."""
    writer = _Current.writer
    return writer.targets if writer is not None else ()


def stop_writing() -> None:
    """Write what is still waiting and stop the writer thread (at the end of a process: ``atexit`` does it, and a
    worker process, which ``multiprocessing`` ends without ``atexit``, calls it itself); lines logged after that
    are written at once, by the thread that logs them. Safe to call again."""
    writer, _Current.writer = _Current.writer, None
    if writer is None:
        return
    root = logging.getLogger()
    for handed in [h for h in root.handlers if isinstance(h, _HandOver)]:
        root.removeHandler(handed)
    writer.stop()
    for target in writer.targets:
        target.flush()
        root.addHandler(target)


def skip_unused_record_fields() -> None:
    """Neither format shows a record's source line, thread or process, so ``logging`` need not find them for
    every record (its documented switches; the caller's frame walk is most of it): a line costs about a third
    less, and the access line is written for every request."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False

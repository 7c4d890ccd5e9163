"""Logs an operator can use: every line a request causes carries its request id, and lines are text or JSON.

The edge (``edge.RequestIds``) puts each request's id in ``REQUEST_ID``; ``RequestIdFilter``, on every handler set up
here, copies it onto each record. hypercorn writes its access line outside the request's task, so for those the id
is read from the response's ``X-Request-ID`` header instead. Fields a call passes in ``extra={...}`` are kept: as
``key=value`` after a text line, as members of a JSON line.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

LOG_FORMATS = ("text", "json")
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")
REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID = 128
_CLIENT_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID}}}")
_ACCESS_ID = "{x-request-id}o"  # hypercorn's access-log atom for that response header
# What every LogRecord has (and what formatting adds): anything else on a record came in ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"


def request_id_from(given: str | None) -> str:
    """The client's id when it is a sane one (at most 128 letters, digits, ``.``, ``_``, ``-``), else a new one."""
    if given and _CLIENT_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id``: the current request's id, or "" outside any request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            found = REQUEST_ID.get()
            if not found and record.name == "hypercorn.access" and isinstance(record.args, Mapping):
                header = record.args.get(_ACCESS_ID)
                found = header if isinstance(header, str) else ""
            record.request_id = found
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "request_tag"}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id]: message key=value…``"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

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


def setup_logging(log_format: str = "text", log_file: str = "") -> None:
    """Log to stderr (and to a rotating file, 10 MB x 5, when ``log_file`` is set) in ``log_format``, unless the
    host process configured logging already (tests, embedding). Either way alembic's INFO chatter (its plugins,
    its DDL mode, each revision, at every start of every worker) stays out: the store says in one line when it
    upgraded the schema."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    root = logging.getLogger()
    if root.handlers:
        return
    root.setLevel(logging.INFO)
    root.addHandler(handler(logging.StreamHandler(), log_format))
    if log_file:
        from logging.handlers import RotatingFileHandler

        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        rotating = RotatingFileHandler(log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8")
        root.addHandler(handler(rotating, log_format))

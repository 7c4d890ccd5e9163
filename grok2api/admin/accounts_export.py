"""Account exports: CSV for spreadsheets, JSON in the reference's token.json shape (importable again)."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime

from starlette.responses import Response

from ..compat.reference_shapes import token_json
from ..store.base import Account

CSV_COLUMNS = (
    "token",
    "tier",
    "state",
    "state_reason",
    "remaining",
    "heavy_remaining",
    "tags",
    "note",
    "created_at",
    "last_used_at",
    "failure_count",
    "last_failure",
    "last_failure_at",
    "requests_ok",
    "requests_failed",
)


def _iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""


def _cell(text: str) -> str:
    # Spreadsheets run cells that start like a formula; free text from operators must not.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _filename(ext: str) -> str:
    return f"grok2api-accounts-{datetime.fromtimestamp(time.time(), UTC):%Y-%m-%d}.{ext}"


def _download(body: bytes, media_type: str, ext: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{_filename(ext)}"', "Cache-Control": "no-store"},
    )


def csv_text(accounts: list[Account]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for a in accounts:
        writer.writerow(
            [
                a.token,
                a.tier,
                a.state,
                _cell(a.state_reason),
                "" if a.remaining is None else a.remaining,
                "" if a.heavy_remaining is None else a.heavy_remaining,
                _cell(",".join(a.tags)),
                _cell(a.note),
                _iso(a.created_at),
                _iso(a.last_used_at),
                a.failure_count,
                _cell(a.last_failure),
                _iso(a.last_failure_at),
                a.requests_ok,
                a.requests_failed,
            ]
        )
    return out.getvalue()


def csv_export(accounts: list[Account]) -> Response:
    # A byte-order mark, so spreadsheet programs read UTF-8 notes correctly (the reference did too).
    return _download(("\ufeff" + csv_text(accounts)).encode(), "text/csv; charset=utf-8", "csv")


def json_export(accounts: list[Account]) -> Response:
    body = json.dumps(token_json(accounts), ensure_ascii=False, indent=2).encode()
    return _download(body, "application/json", "json")

"""Jinja2 rendering for the admin: autoescaped templates (pages and ``_partial`` fragments) and filters."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.routing import Router


def mask_token(token: str) -> str:
    if len(token) <= 16:
        return token[:3] + "…" if len(token) > 3 else "…"
    return f"{token[:8]}…{token[-6:]}"


def fmt_time(ts: float | None) -> str:
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "never"
    delta = (time.time() if now is None else now) - ts
    future = delta < 0
    delta = abs(delta)
    if delta < 60:
        text = f"{int(delta)} s"
    elif delta < 3600:
        text = f"{int(delta // 60)} min"
    elif delta < 86400:
        text = f"{delta / 3600:.1f} h"
    else:
        text = f"{delta / 86400:.1f} d"
    return f"in {text}" if future else f"{text} ago"


def fmt_bytes(n: int | float) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def fmt_quota(value: int | None) -> str:
    return "?" if value is None else str(value)


class Views:
    def __init__(self, templates_dir: Path) -> None:
        self.env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters.update(mask=mask_token, time=fmt_time, ago=fmt_ago, bytes=fmt_bytes, quota=fmt_quota)
        self.env.globals["url"] = self.url
        # The HTML admin's routes, for ``url``; ``build_admin`` sets them (their handlers need the views).
        self.router: Router | None = None

    def page(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(context)

    def url(self, name: str, **path_params: str) -> str:
        """The path of a named admin route: ``url("accounts")``, ``{{ url('static', path='app.css') }}``."""
        if self.router is None:
            raise LookupError(f"no admin routes to find {name!r} in")
        return str(self.router.url_path_for(name, **path_params))

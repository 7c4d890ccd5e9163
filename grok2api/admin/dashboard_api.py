"""/api/stats and /api/storage/mode, in the reference's shapes (with our explicit states added)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from ..compat.reference_shapes import pool_stats
from ..store.base import AdminSession
from . import dashboard_query
from .context import Admin
from .json_api import ok

STORAGE_LABELS = {"file": "FILE", "sqlite": "FILE", "mysql": "MYSQL", "redis": "REDIS"}


async def stats(request: Request, admin: Admin, session: AdminSession) -> Response:
    now = time.time()
    accounts = admin.svc.pool.accounts()
    s = dashboard_query.summarize(accounts, await dashboard_query.recent_usage(admin.svc, now), now)
    requests = {"hour_ok": s.hour_ok, "hour_errors": s.hour_errors, "day_ok": s.day_ok, "day_errors": s.day_errors}
    quota = {"remaining": s.remaining, "heavy_remaining": s.heavy_remaining, "unknown": s.unknown_quota}
    return ok(
        data={**pool_stats(accounts), "states": s.by_state, "by_tier": s.by_tier, "quota": quota, "requests": requests}
    )


async def storage_mode(request: Request, admin: Admin, session: AdminSession) -> Response:
    mode = admin.svc.boot.storage_mode.lower()
    return ok(data={"mode": STORAGE_LABELS.get(mode, mode.upper()), "backend": admin.svc.store.kind})

"""``GET /readyz``: can this process serve requests now? (``/healthz`` only says that it lives.)

Ready means the store answers, its schema is the one this code migrates to, and the process is not draining for
shutdown. Usable accounts are reported but do not gate readiness: a fresh gateway with no account must stay
reachable, so that accounts can be added to it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .edge import json_response, services
from .store.base import AccountState, StoreUnavailable
from .store.guard import RETRY_AFTER


async def readyz(request: Request) -> Response:
    svc = services(request)
    checks: dict[str, dict[str, Any]] = {}
    try:
        schema = await svc.store.schema_state()  # one cheap read: it proves the store answers, too
    except StoreUnavailable:
        checks["store"] = {"ok": False, "detail": "unreachable"}
        checks["migrations"] = {"ok": False, "detail": "unknown while the store is unreachable"}
    else:
        checks["store"] = {"ok": True, "kind": svc.store.kind}
        checks["migrations"] = {"ok": schema.up_to_date, "current": schema.current, "expected": schema.expected}
    accounts = svc.pool.accounts()
    usable = sum(a.state == AccountState.ACTIVE for a in accounts)
    checks["accounts"] = {"ok": usable > 0, "usable": usable, "total": len(accounts), "gating": False}
    ready = checks["store"]["ok"] and checks["migrations"]["ok"] and not svc.traffic.draining
    status = "ready" if ready else ("draining" if svc.traffic.draining else "not_ready")
    body = {"status": status, "checks": checks}
    if ready:
        return json_response(body)
    return json_response(body, status=503, headers={"Retry-After": str(RETRY_AFTER)})

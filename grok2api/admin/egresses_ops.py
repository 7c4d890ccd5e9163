"""What the egress page and the JSON API share: an egress described for an operator (cookie names, never their
values) and an operator's pasted clearance, checked and stored."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from ..egresses import UnknownEgress
from ..grok.egress import Egress, parse_clearance
from ..services import Services

MAX_USER_AGENT = 512


class ClearanceInputError(ValueError):
    """What the operator pasted cannot be used; the message says why."""


def describe(svc: Services, egresses: list[Egress] | None = None) -> list[dict[str, Any]]:
    """Every egress with its health and how many accounts go out through it now."""
    listed = egresses if egresses is not None else svc.egresses.all()
    accounts = Counter(svc.egresses.for_token(a.token).key for a in svc.pool.accounts())
    retry = svc.settings.egress_retry_seconds
    now = time.time()
    return [
        {
            "key": e.key,
            "proxy": e.label,
            "healthy": e.healthy(retry, now),
            "challenged_at": e.challenged_at,
            "evidence": e.evidence,
            "cookies": sorted(e.cookies),
            "user_agent": e.user_agent,
            "clearance_source": e.clearance_source,
            "clearance_at": e.clearance_at,
            "accounts": accounts.get(e.key, 0),
        }
        for e in listed
    ]


async def save_clearance(svc: Services, key: str, pasted: str, user_agent: str) -> Egress:
    """Store an operator's clearance for the egress ``key`` (blank ``pasted`` forgets it). Raises
    ClearanceInputError or UnknownEgress."""
    user_agent = user_agent.strip()
    if len(user_agent) > MAX_USER_AGENT or any(c in user_agent for c in "\r\n"):
        raise ClearanceInputError(f"the User-Agent must be one line of at most {MAX_USER_AGENT} characters")
    if not pasted.strip():
        return await svc.egresses.set_clearance(key, {}, "", source="operator")
    try:
        cookies = parse_clearance(pasted)
    except ValueError as exc:
        raise ClearanceInputError(str(exc)) from None
    return await svc.egresses.set_clearance(key, cookies, user_agent, source="operator")


__all__ = ["ClearanceInputError", "UnknownEgress", "describe", "save_clearance"]

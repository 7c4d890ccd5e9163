"""How long the accounts page takes to render with a large pool (for ``grok2api bench``).

It drives the real handler (filter, sort, page, template) without HTTP, over a mix of queries.
"""

from __future__ import annotations

import time

from starlette.requests import Request

from ..services import Services
from ..store.base import FAST_MODE, AccountState, AdminSession, ModeQuota, NewAccount, Tier
from .accounts_pages import accounts_page
from .context import Ctx
from .routes import build_admin

QUERIES = (b"", b"sort=remaining", b"q=bench-0042", b"tier=super&sort=-last_used", b"tag=team-3&page=4", b"page=150")
STATES = (AccountState.ACTIVE, AccountState.ACTIVE, AccountState.ACTIVE, AccountState.COOLING, AccountState.INVALID)


def _accounts(n: int) -> list[NewAccount]:
    return [
        NewAccount(
            token=f"bench-{i:06d}-" + "x" * 120,  # about as long as a real SSO JWT
            tier=Tier.SUPER if i % 5 == 0 else Tier.BASIC,
            tags=[f"team-{i % 7}"] if i % 3 else [],
            note=f"batch {i // 1000}" if i % 4 == 0 else "",
            state=STATES[i % len(STATES)],
            state_reason="seeded by the benchmark",
            quotas=None if i % 11 == 0 else {FAST_MODE: ModeQuota(remaining=i % 80)},
        )
        for i in range(n)
    ]


async def bench_accounts_page(svc: Services, n: int = 10000, rounds: int = 5) -> float:
    """Seconds per render of /manage/accounts with ``n`` accounts added to ``svc``'s store.

    ``svc`` must be started; use a scratch store, since the accounts stay there afterwards.
    """
    await svc.store.add_accounts(_accounts(n))
    await svc.reload(force=True)
    admin = build_admin(svc)
    now = time.time()
    session = AdminSession(id_hash="bench", username="bench", csrf="bench", created_at=now, expires_at=now + 60)
    timings: list[float] = []
    for _ in range(rounds):
        for query in QUERIES:
            request = Request(
                {
                    "type": "http",
                    "method": "GET",
                    "path": "/manage/accounts",
                    "query_string": query,
                    "headers": [],
                    "app": None,
                }
            )
            started = time.perf_counter()
            response = await accounts_page(Ctx(request, admin, session))
            timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"the accounts page answered {response.status_code}")
    return sum(timings) / len(timings)

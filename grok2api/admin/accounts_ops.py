"""Account operations shared by the HTML admin and the JSON API. Each one writes to the store and
then refreshes this process's pool snapshot, so the next page shows the change."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import msgspec

from ..grok.errors import UpstreamConnectionError, UpstreamHTTPError
from ..grok.failures import classify
from ..quota import QuotaResult, describe_windows
from ..services import Services
from ..store.base import Account, AccountPatch, AccountState
from .accounts_input import MAX_NOTE_LENGTH as MAX_NOTE_LENGTH  # the limits live with the input parsing
from .accounts_input import MAX_TAG_LENGTH as MAX_TAG_LENGTH
from .accounts_input import MAX_TAGS as MAX_TAGS
from .accounts_input import ParsedTokens, Rejected, clean_tags
from .views import fmt_ago

log = logging.getLogger("grok2api.admin")


class AddSummary(msgspec.Struct):
    added: int
    updated: int
    rejected: list[Rejected]


class TestOutcome(msgspec.Struct):
    ok: bool
    message: str  # what grok.com said
    explanation: str  # what it means and what to do
    remaining: int | None = None
    heavy_remaining: int | None = None
    limit: int | None = None
    state: str = ""
    account: Account | None = None


def by_ids(svc: Services, ids: Iterable[int]) -> list[Account]:
    wanted = set(ids)
    return [a for a in svc.pool.accounts() if a.id in wanted]


def by_id(svc: Services, account_id: int) -> Account | None:
    found = by_ids(svc, [account_id])
    return found[0] if found else None


def by_token(svc: Services, token: str) -> Account | None:
    return next((a for a in svc.pool.accounts() if a.token == token), None)


async def add(svc: Services, parsed: ParsedTokens) -> AddSummary:
    result = await svc.store.add_accounts(parsed.accounts) if parsed.accounts else None
    await svc.reload()
    added, updated = (result.added, result.updated) if result else (0, 0)
    log.info("admin added %d and updated %d account(s); %d rejected", added, updated, len(parsed.rejected))
    return AddSummary(added, updated, parsed.rejected)


async def remove(svc: Services, tokens: list[str]) -> int:
    removed = await svc.store.remove_accounts(tokens) if tokens else 0
    await svc.reload()
    return removed


async def set_enabled(svc: Services, accounts: list[Account], enabled: bool) -> int:
    if enabled:
        tokens = [a.token for a in accounts if a.state == AccountState.DISABLED]
        patch = AccountPatch(state=AccountState.ACTIVE, state_reason="enabled by an operator", cooldown_until=None)
    else:
        tokens = [a.token for a in accounts if a.state != AccountState.DISABLED]
        patch = AccountPatch(state=AccountState.DISABLED, state_reason="disabled by an operator")
    changed = await svc.store.update_accounts(tokens, patch) if tokens else 0
    await svc.reload()
    return changed


async def set_tags(svc: Services, acc: Account, tags: list[str]) -> list[str]:
    cleaned = clean_tags(tags)
    await svc.store.update_account(acc.token, AccountPatch(tags=cleaned))
    await svc.reload()
    return cleaned


async def add_tag(svc: Services, accounts: list[Account], tag: str) -> int:
    changed = 0
    for acc in accounts:
        tags = clean_tags([*acc.tags, tag])
        if tags != acc.tags:
            changed += await svc.store.update_account(acc.token, AccountPatch(tags=tags))
    await svc.reload()
    return changed


async def set_note(svc: Services, acc: Account, note: str) -> str:
    cleaned = note.strip()[:MAX_NOTE_LENGTH]
    await svc.store.update_account(acc.token, AccountPatch(note=cleaned))
    await svc.reload()
    return cleaned


def explain(result: QuotaResult, after: Account | None) -> str:
    state = result.state or (after.state if after else "")
    if result.ok:
        if state == AccountState.COOLING and after is not None:
            return (
                f"The session is valid but its quota is used up; it rests until the window resets "
                f"({fmt_ago(after.cooldown_until)}) and is re-checked by itself then."
            )
        tier = f" ({result.tier} tier)" if result.tier else ""
        left = describe_windows(result.windows) or "an unknown number of"
        return f"grok.com accepted the session{tier}: {left} queries left per mode. The account is {state}."
    if state == AccountState.INVALID:
        return "grok.com no longer accepts this SSO cookie. Sign in to grok.com again and replace the token."
    if state == AccountState.BLOCKED:
        return "grok.com has blocked this account; the gateway will not use it."
    if state == AccountState.COOLING and after is not None:
        return f"grok.com rate-limited the account; it rests and is re-checked {fmt_ago(after.cooldown_until)}."
    return (
        "The account was not penalised: the check failed between the gateway and grok.com "
        "(see the message; proxy_url, cf_clearance or the statsig settings may need attention)."
    )


async def test(svc: Services, acc: Account) -> TestOutcome:
    """A live quota check of one pool account; its quota and state are updated from the answer."""
    try:
        result = await svc.quota.refresh(acc)
    except Exception as exc:  # an unexpected failure must still come back as an explained result
        log.warning("live check of account %s failed: %s", acc.id, exc)
        result = QuotaResult(False, f"the check itself failed: {type(exc).__name__}", state=acc.state)
    # Quota moves do not bump the store's version counter: reload the snapshot explicitly.
    await svc.pool.refresh(force=True)
    after = by_id(svc, acc.id)
    fast = result.windows.get("fast")
    return TestOutcome(
        result.ok,
        result.message,
        explain(result, after),
        result.remaining,
        result.heavy_remaining,
        limit=None if fast is None else fast.total,
        state=result.state,
        account=after,
    )


async def test_outside_pool(svc: Services, token: str) -> TestOutcome:
    """The reference could test a token that is not in the pool: ask grok.com, store nothing."""
    try:
        info = await svc.client.rate_limits(token, "fast", svc.settings)
    except (UpstreamHTTPError, UpstreamConnectionError, TimeoutError) as exc:
        failure = classify(exc)
        return TestOutcome(
            False, failure.reason, "The token is not in the pool, so nothing was changed.", state=str(failure.kind)
        )
    return TestOutcome(
        True,
        f"valid; fast {info.remaining} of {info.total} queries left",
        "The token is not in the pool; add it to use it.",
        info.remaining,
        limit=info.total,
        state="active",
    )

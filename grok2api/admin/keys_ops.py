"""Client API keys: validated creation (the secret is returned once, only its hash is stored),
revocation, and per-key usage. The gateway is told at once so the change applies on this instance."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..client_keys import hash_key, new_key
from ..grok.catalog import MODELS
from ..services import Services
from ..store.base import ClientKey, UsageRow
from .accounts_query import small_int

log = logging.getLogger("grok2api.admin")
PREFIX_LENGTH = 12


class KeyFormError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class KeyRequest:
    name: str
    models: list[str]
    rpm: int
    expires_at: float | None


def parse_form(form: Mapping[str, str], models: list[str], now: float | None = None) -> KeyRequest:
    errors: dict[str, str] = {}
    name = form.get("name", "").strip()
    if not name:
        errors["name"] = "Give the key a name, e.g. who uses it."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        errors["models"] = f"Unknown model(s): {', '.join(unknown)}."
    rpm_raw = form.get("rpm", "").strip() or "0"
    parsed_rpm = small_int(rpm_raw)
    rpm = -1 if parsed_rpm is None else parsed_rpm
    if not 0 <= rpm <= 100_000:
        errors["rpm"] = "A whole number of requests per minute from 0 (no limit) to 100000."
    expires_at: float | None = None
    expires_raw = form.get("expires", "").strip()
    if expires_raw:
        try:
            expires_at = datetime.strptime(expires_raw, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError:
            errors["expires"] = "Use a date like 2030-01-31."
        else:
            if expires_at <= (time.time() if now is None else now):
                errors["expires"] = "The expiry date must be in the future."
    if errors:
        raise KeyFormError(errors)
    return KeyRequest(name, sorted(set(models)), rpm, expires_at)


async def create(svc: Services, req: KeyRequest) -> tuple[ClientKey, str]:
    secret = new_key()
    key = ClientKey(
        id=secrets.token_hex(8),
        name=req.name,
        key_hash=hash_key(secret),
        prefix=secret[:PREFIX_LENGTH],
        models=req.models,
        rpm=req.rpm,
        expires_at=req.expires_at,
        created_at=time.time(),
    )
    await svc.store.put_client_key(key)
    await svc.load_keys()
    log.info("client key %s (%r) created", key.id, key.name)
    return key, secret


async def revoke(svc: Services, key_id: str) -> bool:
    done = await svc.store.revoke_client_key(key_id)
    await svc.load_keys()
    if done:
        log.info("client key %s revoked", key_id)
    return done


def usage_by_key(rows: Iterable[UsageRow]) -> dict[str, tuple[int, int]]:
    """(ok, errors) per key id over the rows given."""
    out: dict[str, tuple[int, int]] = {}
    for row in rows:
        if not row.key_id:
            continue
        ok, err = out.get(row.key_id, (0, 0))
        out[row.key_id] = (ok + row.count, err) if row.outcome == "ok" else (ok, err + row.count)
    return out


def status(key: ClientKey, now: float | None = None) -> str:
    if key.revoked:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= (time.time() if now is None else now):
        return "expired"
    return "active"

"""Client API keys: validated creation (the secret is returned once, only its hash is stored),
revocation, and per-key usage. The gateway is told at once so the change applies on this instance."""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..client_keys import hash_key, new_key
from ..grok.catalog import MODELS
from ..services import Services
from ..store.base import ClientKey, UsageRow
from .accounts_query import small_int

log = logging.getLogger("grok2api.admin")
PREFIX_LENGTH = 12
_LATEST = 253_402_300_800.0  # 10000-01-01: later times do not fit a datetime


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


MAX_NAME = 100
MAX_RPM = 100_000
RPM_RULE = f"A whole number of requests per minute from 0 (no limit) to {MAX_RPM}."


def _check(errors: dict[str, str], name: str, models: list[str], rpm: int | None) -> None:
    """The rules every way of making a key shares (the admin page, the JSON API, the CLI)."""
    if not name:
        errors["name"] = "Give the key a name, e.g. who uses it."
    elif len(name) > MAX_NAME:
        errors["name"] = f"At most {MAX_NAME} characters."
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        errors["models"] = f"Unknown model(s): {', '.join(unknown)}."
    if rpm is None or not 0 <= rpm <= MAX_RPM:
        errors["rpm"] = RPM_RULE


def _future(errors: dict[str, str], field: str, expires_at: float | None, now: float | None) -> None:
    if expires_at is not None and expires_at <= (time.time() if now is None else now):
        errors[field] = "The expiry must be in the future."


def parse_form(form: Mapping[str, str], models: list[str], now: float | None = None) -> KeyRequest:
    errors: dict[str, str] = {}
    name = form.get("name", "").strip()
    rpm = small_int(form.get("rpm", "").strip() or "0")
    _check(errors, name, models, rpm)
    expires_at: float | None = None
    expires_raw = form.get("expires", "").strip()
    if expires_raw:
        try:
            expires_at = datetime.strptime(expires_raw, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError:
            errors["expires"] = "Use a date like 2030-01-31."
        _future(errors, "expires", expires_at, now)
    if errors:
        raise KeyFormError(errors)
    return KeyRequest(name, sorted(set(models)), rpm or 0, expires_at)


def parse_expiry(value: object) -> float | None:
    """``expires_at`` as the JSON API and the CLI take it: unix seconds (a number, or a string of digits), an ISO
    8601 date or date-time (without an offset it is UTC), or None / "" for never. ValueError otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expected unix seconds or an ISO 8601 date-time")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{text!r} is neither unix seconds nor an ISO 8601 date-time") from None
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        value = number
    if isinstance(value, int | float) and math.isfinite(value) and 0 < value < _LATEST:
        return float(value)
    raise ValueError("expected unix seconds (a positive number) or an ISO 8601 date-time")


def parse_api(data: Mapping[str, object], now: float | None = None) -> KeyRequest:
    """A JSON body: ``name`` (required), ``models`` (a list of model ids, default every model), ``rpm`` (an
    integer, default 0 = no limit), ``expires_at`` (see ``parse_expiry``, default never)."""
    errors: dict[str, str] = {}
    name = data.get("name")
    if not isinstance(name, str):
        errors["name"] = "Give the key a name (a string), e.g. who uses it."
        name = "-"
    models = data.get("models")
    if models is None:
        models = []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        errors["models"] = "A list of model ids (leave it out for every model)."
        models = []
    rpm = data.get("rpm")
    rpm = 0 if rpm is None else rpm
    if not isinstance(rpm, int) or isinstance(rpm, bool):
        errors["rpm"] = RPM_RULE
        rpm = 0
    _check(errors, name.strip(), models, rpm)
    expires_at: float | None = None
    try:
        expires_at = parse_expiry(data.get("expires_at"))
    except ValueError as exc:
        errors["expires_at"] = f"{exc}, e.g. 2030-01-31T00:00:00Z or 1895443200."
    _future(errors, "expires_at", expires_at, now)
    if errors:
        raise KeyFormError(errors)
    return KeyRequest(name.strip(), sorted(set(models)), rpm, expires_at)


def new_client_key(req: KeyRequest) -> tuple[ClientKey, str]:
    """A key for ``req`` and its secret, which is shown once: only its hash and prefix are kept."""
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
    return key, secret


async def create(svc: Services, req: KeyRequest) -> tuple[ClientKey, str]:
    key, secret = new_client_key(req)
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


def key_record(key: ClientKey) -> dict[str, Any]:
    """A key as the JSON API and the CLI show it: never its secret or hash. Times are unix seconds (None: never)."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "models": key.models,
        "rpm": key.rpm,
        "expires_at": key.expires_at,
        "status": status(key),
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "requests": key.requests,
    }

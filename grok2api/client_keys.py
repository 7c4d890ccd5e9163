"""Client authentication for /v1: the single ``api_key`` setting and the stored client keys."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from typing import Protocol

from .errors import AuthError, PermissionDenied, RateLimited
from .store.base import ClientKey

RPM_WINDOW = 60.0  # seconds: a key's requests-per-minute window opens at its first request


class RateWindows(Protocol):
    """Where request counts live (the store: shared by every worker and replica)."""

    async def hit_window(self, name: str, window_seconds: float, limit: int) -> float: ...


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "sk-g2a-" + secrets.token_urlsafe(32)


class ClientKeys:
    """An in-memory copy of the stored keys, refreshed by the app's watcher."""

    def __init__(self, windows: RateWindows | None = None) -> None:
        self.by_hash: dict[str, ClientKey] = {}
        self.windows = windows  # counts the keys' requests per minute; needed once a key has an rpm limit

    def load(self, keys: list[ClientKey]) -> None:
        self.by_hash = {k.key_hash: k for k in keys}

    def authenticate(self, header: str | None, api_key: str) -> ClientKey | None:
        """Return the matching client key (None for the shared api_key or an open gateway)."""
        if not api_key and not self.by_hash:
            return None
        if not header or not header.lower().startswith("bearer "):
            raise AuthError(
                "Missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key: <key>').",
                code="missing_api_key",
            )
        given = header[7:].strip()
        if api_key and hmac.compare_digest(given.encode(), api_key.encode()):
            return None
        key = self.by_hash.get(hash_key(given))
        if key is None or key.revoked:
            raise AuthError("Invalid API key.")
        if key.expires_at is not None and key.expires_at < time.time():
            raise AuthError("This API key has expired.", code="expired_api_key")
        return key

    async def check(self, key: ClientKey | None, model: str) -> None:
        """May ``key`` use ``model`` now (its model list, its requests per minute)? Each allowed model use is
        counted against the key's rpm window in the store, in one atomic step."""
        if key is None:
            return
        if key.models and model not in key.models:
            raise PermissionDenied(f"This API key may not use model {model!r}.", code="model_not_allowed")
        if key.rpm:
            assert self.windows is not None, "ClientKeys needs its rate windows to enforce rpm limits"
            wait = await self.windows.hit_window(f"rpm:{key.id}", RPM_WINDOW, key.rpm)
            if wait > 0:
                retry = max(1, math.ceil(wait))  # until this key's window ends
                raise RateLimited(
                    f"This API key is limited to {key.rpm} requests per minute; retry in {retry} s.",
                    retry_after=retry,
                )

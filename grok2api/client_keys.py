"""Client authentication for /v1: the single ``api_key`` setting and the stored client keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from .errors import AuthError, PermissionDenied, RateLimited
from .store.base import ClientKey


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "sk-g2a-" + secrets.token_urlsafe(32)


class ClientKeys:
    """An in-memory copy of the stored keys, refreshed by the app's watcher."""

    def __init__(self) -> None:
        self.by_hash: dict[str, ClientKey] = {}
        self._minute: dict[str, tuple[int, int]] = {}  # key id -> (minute, count)

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

    def check(self, key: ClientKey | None, model: str) -> None:
        if key is None:
            return
        if key.models and model not in key.models:
            raise PermissionDenied(f"This API key may not use model {model!r}.", code="model_not_allowed")
        if key.rpm:
            minute = int(time.time() // 60)
            seen_minute, count = self._minute.get(key.id, (minute, 0))
            count = count + 1 if seen_minute == minute else 1
            self._minute[key.id] = (minute, count)
            if count > key.rpm:
                retry = max(1, 60 - int(time.time()) % 60)  # until the next minute window opens
                raise RateLimited(f"This API key is limited to {key.rpm} requests per minute.", retry_after=retry)

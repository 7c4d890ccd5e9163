"""Admin credentials and sessions.

The password is only ever stored as a salted scrypt hash in the store's settings table. With no
password configured, the first start generates one and logs it once. Sessions live in the store
(shared by workers and replicas); the cookie or bearer value itself is never stored, only its
SHA-256.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import math
import secrets
import time

import msgspec

from ..passwords import ADMIN_HASH_KEY, ADMIN_USER_KEY, hash_password, verify_password
from ..services import Services
from ..store.base import AdminSession
from .session_throttle import LoginThrottle

log = logging.getLogger("grok2api.admin")

SESSION_TTL = 24 * 3600.0
DEFAULT_USERNAME = "admin"
MIN_PASSWORD_LENGTH = 8


@functools.cache
def _dummy_hash() -> str:
    """Checked when the username is wrong, so a wrong username costs as much time as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def session_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginResult(msgspec.Struct):
    token: str | None = None
    session: AdminSession | None = None
    retry_after: float = 0.0  # > 0: throttled, nothing was checked


class PasswordChangeError(ValueError):
    pass


class AdminAuth:
    def __init__(self, svc: Services, throttle: LoginThrottle | None = None) -> None:
        self.svc = svc
        self.throttle = throttle or LoginThrottle(svc.store)
        self._ready = False
        self._lock = asyncio.Lock()

    # -- credentials -------------------------------------------------------------------------

    @property
    def env_password(self) -> str:
        return self.svc.boot.admin_password or self.svc.boot.environ.get("GROK2API_ADMIN_PASSWORD", "")

    @property
    def env_username(self) -> str:
        explicit = self.svc.boot.environ.get("GROK2API_ADMIN_USERNAME", "").strip()
        if explicit:
            return explicit
        return self.svc.boot.admin_username if self.svc.boot.admin_username != DEFAULT_USERNAME else ""

    async def ensure_credentials(self) -> None:
        """Make sure a password hash exists (once per process; cheap after the first call)."""
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            await self._ensure()
            self._ready = True

    async def _ensure(self) -> None:
        store = self.svc.store
        stored = await store.load_settings()
        env_pw, env_user = self.env_password, self.env_username
        if env_user and stored.get(ADMIN_USER_KEY) != env_user:
            await store.save_settings({ADMIN_USER_KEY: env_user})
        if env_pw:
            current = str(stored.get(ADMIN_HASH_KEY) or "")
            if not current or not await asyncio.to_thread(verify_password, env_pw, current):
                await store.save_settings({ADMIN_HASH_KEY: await asyncio.to_thread(hash_password, env_pw)})
            return
        if stored.get(ADMIN_HASH_KEY):
            return
        password = secrets.token_urlsafe(15)
        digest = await asyncio.to_thread(hash_password, password)
        # Several workers may start together. Hashing is slow (and slower on a busy CPU), so look
        # again right before writing: a worker that hashed slowly must not overwrite a password
        # another one has already printed. Then only the one whose hash survived prints.
        stored = await store.load_settings()
        if stored.get(ADMIN_HASH_KEY):
            return
        await store.save_settings({ADMIN_HASH_KEY: digest})
        await asyncio.sleep(0.3)
        if (await store.load_settings()).get(ADMIN_HASH_KEY) != digest:
            return
        user = str(stored.get(ADMIN_USER_KEY) or DEFAULT_USERNAME)
        log.warning(
            "No admin password was configured, so one was generated. Sign in at /login as %r with password: %s "
            "(shown once; only its hash is stored; change it under Settings or set GROK2API_ADMIN_PASSWORD)",
            user,
            password,
        )

    async def username(self) -> str:
        if self.env_username:
            return self.env_username
        return str((await self.svc.store.load_settings()).get(ADMIN_USER_KEY) or DEFAULT_USERNAME)

    async def _check(self, username: str, password: str) -> bool:
        stored = await self.svc.store.load_settings()
        if not stored.get(ADMIN_HASH_KEY):
            # The store lost its data since this process set the credentials up (a flushed Redis, a new
            # database): set them up again, as a first start would, instead of refusing every password.
            self._ready = False
            await self.ensure_credentials()
            stored = await self.svc.store.load_settings()
        expected_user = self.env_username or str(stored.get(ADMIN_USER_KEY) or DEFAULT_USERNAME)
        digest = str(stored.get(ADMIN_HASH_KEY) or "")
        user_ok = hmac.compare_digest(username.encode(), expected_user.encode())
        pw_ok = await asyncio.to_thread(verify_password, password, digest if (user_ok and digest) else _dummy_hash())
        return user_ok and pw_ok and bool(digest)

    # -- sessions ----------------------------------------------------------------------------

    async def login(self, username: str, password: str, client: str) -> LoginResult:
        await self.ensure_credentials()
        # The attempt is counted before it is checked (a success clears it): otherwise a burst of parallel
        # guesses would all be checked before the first failure was counted.
        wait = await self.throttle.attempt(client)
        if wait > 0:
            return LoginResult(retry_after=wait)
        if not await self._check(username, password):
            log.warning("failed admin login for %r from %s", username[:64], client)
            return LoginResult()
        await self.throttle.success(client)
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = AdminSession(
            id_hash=session_hash(token),
            username=username,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
        await self.svc.store.put_session(session)
        log.info("admin %r signed in from %s", username, client)
        return LoginResult(token=token, session=session)

    async def session(self, token: str | None) -> AdminSession | None:
        return (await self.session_renewed(token))[0]

    async def session_renewed(self, token: str | None) -> tuple[AdminSession | None, bool]:
        """The live session for ``token``, and whether this call extended it (so a cookie carrying
        it must be extended too)."""
        if not token or len(token) > 256:
            return None, False
        found = await self.svc.store.get_session(session_hash(token))
        if found is None or found.expires_at <= time.time():
            return None, False
        if found.expires_at - time.time() < SESSION_TTL / 2:
            # Sliding expiry, written at most twice a day per session rather than per request.
            found.expires_at = time.time() + SESSION_TTL
            await self.svc.store.put_session(found)
            return found, True
        return found, False

    async def logout(self, session: AdminSession) -> None:
        await self.svc.store.delete_session(session.id_hash)

    async def change_password(self, session: AdminSession, current: str, new: str, confirm: str) -> int:
        """Store a new hash and end every other session; returns how many were ended."""
        if self.env_password:
            raise PasswordChangeError("The password is set by GROK2API_ADMIN_PASSWORD; change it there.")
        if new != confirm:
            raise PasswordChangeError("The new passwords do not match.")
        if len(new) < MIN_PASSWORD_LENGTH:
            raise PasswordChangeError(f"Use at least {MIN_PASSWORD_LENGTH} characters.")
        # Throttled like the login, per session: a stolen session must not be a way to guess the
        # password (and keep access after the session ends). Counted before the check, as in login.
        key = f"session:{session.id_hash}"
        wait = await self.throttle.attempt(key)
        if wait > 0:
            raise PasswordChangeError(f"Too many wrong passwords; try again in {math.ceil(wait)} s.")
        if not await self._check(session.username, current):
            raise PasswordChangeError("The current password is wrong.")
        await self.throttle.success(key)
        await self.svc.store.save_settings({ADMIN_HASH_KEY: await asyncio.to_thread(hash_password, new)})
        ended = await self.svc.store.delete_sessions(except_id_hash=session.id_hash)
        log.warning("admin password changed by %r; %d other session(s) ended", session.username, ended)
        return ended

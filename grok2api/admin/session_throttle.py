"""Login throttling: a few attempts per client per window, counted in the store so that every worker and replica
shares one count."""

from __future__ import annotations

from ..store.base import Store


class LoginThrottle:
    """At most ``max_failures`` sign-in attempts per client in a window of ``window`` seconds that opens at its first
    attempt; later ones wait until it ends. A successful sign-in clears the client's count. Every attempt is counted
    before its password is checked, so a burst of parallel guesses cannot outrun the count (scrypt already makes
    each guess cost ~50 ms of CPU)."""

    def __init__(self, store: Store, max_failures: int = 5, window: float = 300.0) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window = window

    async def attempt(self, client: str) -> float:
        """Count one attempt of ``client``: 0.0 when it may be checked, else the seconds it must still wait."""
        return await self.store.hit_window(f"login:{client}", self.window, self.max_failures)

    async def success(self, client: str) -> None:
        await self.store.clear_window(f"login:{client}")

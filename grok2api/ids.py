"""Ids that must be unique and uuid-shaped, not unguessable (protocol message ids, completion ids): version-4
UUIDs drawn from a seeded generator instead of ``uuid.uuid4()``, which costs a system call and a UUID object
per id. Secrets (keys, sessions) never come from here."""

from __future__ import annotations

import os
import random

_RNG = random.Random()  # seeded from the system's randomness
os.register_at_fork(after_in_child=_RNG.seed)  # a forked worker must not repeat its parent's ids
_KEEP = ((1 << 128) - 1) & ~((0xF000 << 64) | (0xC000 << 48))  # all but the version and variant bits
_MARK = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def uuid4_hex() -> str:
    """A random version-4 UUID as 32 hex digits (``uuid.uuid4().hex``)."""
    return f"{_RNG.getrandbits(128) & _KEEP | _MARK:032x}"


def uuid4_str() -> str:
    """A random version-4 UUID in its canonical form (``str(uuid.uuid4())``)."""
    h = uuid4_hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

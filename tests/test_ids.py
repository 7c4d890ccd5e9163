"""uuid-shaped ids: canonical version-4 UUIDs, unique, and a forked worker does not repeat its parent's."""

from __future__ import annotations

import os
import uuid

from grok2api.ids import uuid4_hex, uuid4_str


def test_ids_are_version_4_uuids_in_their_usual_spellings() -> None:
    for _ in range(200):
        text, digits = uuid4_str(), uuid4_hex()
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
        parsed = uuid.UUID(hex=digits)
        assert parsed.hex == digits and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len({uuid4_hex() for _ in range(10_000)}) == 10_000


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then leave at once
        os.close(read_end)
        os.write(write_end, uuid4_hex().encode())
        os._exit(0)
    os.close(write_end)
    parent_next = uuid4_hex()
    with os.fdopen(read_end, "rb") as pipe:
        child_next = pipe.read().decode()
    os.waitpid(pid, 0)
    assert len(child_next) == 32 and child_next != parent_next

"""Remove Grok-internal elements (``<xaiArtifact …>…</xaiArtifact>``, ``<grok:render …>``, tool cards)
from streamed text. Tag names match case-insensitively and elements may span many tokens."""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=32)
def _opening_tag(tags: tuple[str, ...]) -> re.Pattern[str] | None:
    """The pattern of an opening tag among ``tags``, built once per tag list (every answer makes two filters)."""
    if not tags:
        return None
    return re.compile("<(" + "|".join(re.escape(t) for t in tags) + r")(?=[\s>/])", re.IGNORECASE)


class TagFilter:
    def __init__(self, tags: list[str]) -> None:
        self.tags = [t.lower() for t in tags if t]
        self._buf = ""
        self._inside: str | None = None  # the tag whose element is being dropped
        self._open = _opening_tag(tuple(self.tags))

    def _could_start(self, fragment: str) -> bool:
        low = fragment.lower()
        return any(f"<{t} ".startswith(low) or f"</{t}>".startswith(low) for t in self.tags)

    def feed(self, text: str) -> str:
        if self._open is None or (not self._buf and self._inside is None and "<" not in text):
            return text  # nothing held back and no tag can start here: most tokens
        buf = self._buf + text
        out: list[str] = []
        pos = 0
        while pos < len(buf):
            if self._inside is not None:
                close = f"</{self._inside}>"
                idx = buf.lower().find(close, pos)
                if idx < 0:
                    pos = max(pos, len(buf) - len(close) + 1)  # keep only what could start the closer
                    break
                pos = idx + len(close)
                self._inside = None
                continue
            lt = buf.find("<", pos)
            if lt < 0:
                out.append(buf[pos:])
                pos = len(buf)
                break
            out.append(buf[pos:lt])
            pos = lt
            low = buf[lt : lt + 64].lower()
            stray = next((t for t in self.tags if low.startswith(f"</{t}>")), None)
            if stray is not None:
                pos = lt + len(stray) + 3
                continue
            match = self._open.match(buf, lt)
            if match is not None:
                end = buf.find(">", match.end())
                if end < 0:
                    break  # the opening tag is still arriving
                if buf[end - 1] != "/":
                    self._inside = match.group(1).lower()
                pos = end + 1
                continue
            tail = buf[lt:]
            if len(tail) < 64 and self._could_start(tail):
                break  # too short to decide yet
            out.append("<")
            pos = lt + 1
        self._buf = buf[pos:]
        return "".join(out)

    def flush(self) -> str:
        """End of stream: text held back that never became a filtered tag is returned."""
        rest = "" if self._inside is not None else self._buf
        self._buf, self._inside = "", None
        return rest

"""``stop`` sequences and ``max_tokens`` applied to the visible answer as it streams.

Grok's web API takes neither, so the gateway enforces them: text that could be the start of a
stop sequence is held back until it is known not to be one, and the answer is cut (finish_reason
``"length"``) once its estimated token count reaches the limit. The upstream call is then closed.
"""

from __future__ import annotations


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


class OutputLimit:
    def __init__(self, stop: list[str] | None = None, max_tokens: int | None = None) -> None:
        self.stop = [s for s in (stop or []) if s]
        self.max_bytes = max_tokens * 4 if max_tokens else None  # the inverse of estimate_tokens
        self.used = 0
        self.held = ""
        self.finish_reason: str | None = None
        self.stop_sequence: str | None = None  # the sequence that ended the answer

    @property
    def active(self) -> bool:
        return bool(self.stop) or self.max_bytes is not None

    def feed(self, text: str) -> str:
        """The part of ``text`` that may be sent now."""
        if self.finish_reason is not None or not text:
            return ""
        if not self.stop:
            return self._budget(text)
        buf = self.held + text
        hits = [(i, s) for i, s in ((buf.find(s), s) for s in self.stop) if i >= 0]
        if hits:
            at, sequence = min(hits, key=lambda hit: hit[0])
            self.held = ""
            out = self._budget(buf[:at])
            if self.finish_reason is None:
                self.finish_reason = "stop"
                self.stop_sequence = sequence
            return out
        keep = self._partial_suffix(buf)
        self.held = buf[len(buf) - keep :] if keep else ""
        return self._budget(buf[: len(buf) - keep])

    def flush(self) -> str:
        """End of the answer: text held back that never became a stop sequence."""
        held, self.held = self.held, ""
        return self._budget(held) if self.finish_reason is None else ""

    def _partial_suffix(self, buf: str) -> int:
        """Length of the longest end of ``buf`` that begins some stop sequence."""
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(buf)), best, -1):
                if s.startswith(buf[-n:]):
                    best = n
                    break
        return best

    def _budget(self, text: str) -> str:
        if self.max_bytes is None or not text:
            return text
        room = self.max_bytes - self.used
        size = _bytes(text)
        if size <= room:
            self.used += size
            return text
        cut = text.encode("utf-8")[: max(room, 0)].decode("utf-8", "ignore")
        self.used += _bytes(cut)
        self.finish_reason = "length"
        return cut

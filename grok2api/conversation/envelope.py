"""Finding ``<tool_call>…</tool_call>`` blocks in streamed text.

Text outside the blocks is released as soon as it cannot be the start of a block: only a tail that could
still become ``<tool_call>`` (or a Markdown code-fence opener that may wrap one) is held back, so prose
streams as it comes while no piece of the envelope ever gets out, however the tag is split across chunks.
A fence that wrapped blocks is taken out with them, its closing ``` included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
# A fence opener right before a block (```json, ```xml …) belongs to the envelope, not to the prose.
_FENCE_TAIL = re.compile(r"```[A-Za-z0-9_-]*\s*$")
_MAYBE_FENCE = re.compile(r"`{1,2}$")


@dataclass(slots=True)
class Prose:
    text: str


@dataclass(slots=True)
class Block:
    """The text between the tags; ``closed`` is False for a block the answer never closed."""

    body: str
    closed: bool = True


Piece = Prose | Block


def _partial_open(text: str) -> int:
    """Length of the longest tail of ``text`` that begins the opening tag."""
    lowered = text[-(len(OPEN) - 1) :].lower()
    for n in range(len(lowered), 0, -1):
        if OPEN.startswith(lowered[-n:]):
            return n
    return 0


class EnvelopeParser:
    def __init__(self) -> None:
        self.buf = ""
        self.in_block = False
        self.fenced = False  # the blocks so far sit in a code fence whose closing ``` has not come yet

    def feed(self, text: str) -> list[Piece]:
        self.buf += text
        out: list[Piece] = []
        while self.buf:
            if self.fenced and not self.in_block:
                head = self.buf.lstrip()
                if head in ("", "`", "``") or OPEN.startswith(head.lower()):
                    break  # it may still become the closing fence, or the fence's next block
                if not head.lower().startswith(OPEN):
                    self.fenced = False
                    if head.startswith("```"):
                        self.buf = head[3:]  # the fence closes: it was part of the envelope
                        continue
            lowered = self.buf.lower()
            if self.in_block:
                end = lowered.find(CLOSE)
                if end < 0:
                    break
                out.append(Block(self.buf[:end]))
                self.buf = self.buf[end + len(CLOSE) :]
                self.in_block = False
                continue
            start = lowered.find(OPEN)
            if start >= 0:
                before = self.buf[:start]
                opener = _FENCE_TAIL.search(before)
                prose = before[: opener.start()] if opener else before
                self.fenced = opener is not None or (self.fenced and not before.strip())
                if prose:
                    out.append(Prose(prose))
                self.buf = self.buf[start + len(OPEN) :]
                self.in_block = True
                continue
            keep = self._held(self.buf)
            if keep < len(self.buf):
                out.append(Prose(self.buf[: len(self.buf) - keep]))
                self.buf = self.buf[len(self.buf) - keep :]
            break
        return out

    @staticmethod
    def _held(text: str) -> int:
        """How much of the end of ``text`` to hold: a partial tag, with a fence opener right before it."""
        partial = _partial_open(text)
        head = text[: len(text) - partial]
        fence = _FENCE_TAIL.search(head) or _MAYBE_FENCE.search(head)
        return len(text) - fence.start() if fence else partial

    def flush(self) -> list[Piece]:
        """The end of the text: an unclosed block, or the prose held back."""
        rest, self.buf = self.buf, ""
        if self.in_block:
            self.in_block = False
            return [Block(rest, closed=False)]
        return [Prose(rest)] if rest else []

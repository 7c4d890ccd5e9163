"""Inline citations: ``<grok:render card_id=…>`` tags in the answer text (resolved by the card attachment
that carries the card's URL) and citation chunks both become ``[[n]](url)`` links, numbered by source in
the order the text cites them. grok.com sends these on the chat WebSocket and on the REST answer alike.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_RENDER_START = re.compile(r"<grok:render\b", re.IGNORECASE)
_RENDER_CLOSE = re.compile(r"</grok:render\s*>", re.IGNORECASE)
_CARD_ID = re.compile(r"""card_id\s*=\s*["']([^"']*)["']""")
_TAG_PREFIX = "<grok:render"
_DECODER = msgspec.json.Decoder()


def link(url: str) -> str:
    """A URL safe inside markdown's ``(…)``; empty when it is not an http(s) URL."""
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        return ""
    for raw, quoted in ((" ", "%20"), ("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E")):
        url = url.replace(raw, quoted)
    return url


def card_data(card: dict[str, Any]) -> dict[str, Any]:
    """A card attachment's payload: ``jsonData`` as an object or a JSON string, else the card itself."""
    data = card.get("jsonData")
    if isinstance(data, str) and data:
        try:
            data = _DECODER.decode(data)
        except msgspec.DecodeError:
            data = None
    if isinstance(data, dict):
        return {**card, **data}
    return card


def _card_id(tag: str) -> str | None:
    match = _CARD_ID.search(tag)
    return match.group(1) if match is not None else None


def _partial_tag(text: str) -> int:
    """How many trailing characters could still become ``<grok:render``."""
    low = text[-len(_TAG_PREFIX) :].lower()
    for size in range(min(len(low), len(_TAG_PREFIX) - 1), 0, -1):
        if _TAG_PREFIX.startswith(low[-size:]):
            return size
    return 0


class InlineCitations:
    """The answer text on its way out. ``<grok:render card_id=…>`` tags become ``[[n]](url)`` once
    their card is known; until then the tag and everything after it is held back (order matters)."""

    def __init__(self) -> None:
        self.cards: dict[str, str] = {}  # card id → url ("" for a card that is not a link)
        self.citations: dict[str, int] = {}  # url → n, shared by tags and render_citation chunks
        self.parts: list[str] = []
        self._held = ""
        self._waiting_for: str | None = None  # the card the held text waits for

    def cite(self, url: str) -> str:
        n = self.citations.setdefault(url, len(self.citations) + 1)
        return f"[[{n}]]({url})"

    def add_citation(self, url: str) -> str:
        """A citation at the current end of the answer. Behind held text it waits in line as a tag
        of its own (a card id upstream never uses), so numbers follow the order of the text."""
        if not self._held:
            return self._release(self.cite(url), "")
        key = f"\x00{len(self.cards)}"
        self.cards[key] = url
        return self.add(f'<grok:render card_id="{key}"/>')

    def card(self, card_id: str, url: str) -> str:
        """A card attachment: its id now stands for ``url`` (or for nothing, when it is not a link).
        Returns the text held back for it that can go now."""
        self.cards[card_id] = link(url)
        return self.add("")

    def add(self, text: str) -> str:
        """Text to append; returns what can be released now."""
        self._held += text
        if self._waiting_for is not None and self._waiting_for not in self.cards:
            return ""  # still waiting for that card: no need to scan the held text again
        self._waiting_for = None
        if "<" not in self._held:
            return self._release(self._held, "")
        out: list[str] = []
        buf = self._held
        while (match := _RENDER_START.search(buf)) is not None:
            out.append(buf[: match.start()])
            buf = buf[match.start() :]
            end = self._tag_end(buf)
            if end is None:
                return self._release("".join(out), buf)  # the tag is still arriving
            replacement = self._resolve(buf[:end])
            if replacement is None:
                self._waiting_for = _card_id(buf[:end])
                return self._release("".join(out), buf)
            out.append(replacement)
            buf = buf[end:]
        keep = _partial_tag(buf)
        out.append(buf[: len(buf) - keep])
        return self._release("".join(out), buf[len(buf) - keep :])

    def finish(self) -> str:
        """End of the turn: resolve what can be, drop tags that never resolved, release the rest."""
        out: list[str] = []
        buf = self._held
        while (match := _RENDER_START.search(buf)) is not None:
            out.append(buf[: match.start()])
            buf = buf[match.start() :]
            end = self._tag_end(buf)
            if end is None:
                buf = ""  # an unfinished tag: never shown raw
                break
            out.append(self._resolve(buf[:end]) or "")
            buf = buf[end:]
        out.append(buf)
        self._waiting_for = None
        return self._release("".join(out), "")

    def _release(self, text: str, held: str) -> str:
        self._held = held
        if text:
            self.parts.append(text)
        return text

    @staticmethod
    def _tag_end(buf: str) -> int | None:
        """Where the tag that starts ``buf`` ends (self-closing or with its closer), if it arrived."""
        gt = buf.find(">")
        if gt < 0:
            return None
        if buf[gt - 1] == "/":
            return gt + 1
        close = _RENDER_CLOSE.search(buf, gt + 1)
        return close.end() if close is not None else None

    def _resolve(self, tag: str) -> str | None:
        """The tag's replacement, or None while its card has not arrived."""
        card_id = _card_id(tag)
        if card_id is None:
            return ""
        url = self.cards.get(card_id)
        if url is None:
            return None
        return self.cite(url) if url else ""

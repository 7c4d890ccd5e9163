"""Flatten a ``Conversation`` into Grok's single ``message`` string plus the image URLs to upload.

Roles are kept and turns separated: a lone user turn is sent as-is; a conversation becomes
``Role: text`` blocks separated by blank lines, earlier reasoning (``<think>``) is dropped, and tool
calls and results are written in the envelope Grok is asked to use, each result next to its call's id.
"""

from __future__ import annotations

import re

import msgspec

from ..errors import InvalidRequest
from .instructions import call_block, result_block
from .model import Conversation, Image, Text, Turn

MAX_IMAGES = 10
_THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL | re.IGNORECASE)
_LABELS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


class Prompt(msgspec.Struct):
    message: str
    image_urls: list[str]


def _parts(turn: Turn, images: list[str], mark: bool, param: str) -> str:
    texts: list[str] = []
    for part in turn.content:
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(part, Image):
            if len(images) >= MAX_IMAGES:
                raise InvalidRequest(f"At most {MAX_IMAGES} images per request are supported.", param=param)
            images.append(part.url)
            if mark:
                texts.append(f"[image {len(images)}]")
    return "\n".join(t for t in texts if t)


def _block(turn: Turn, text: str, names: dict[str, str]) -> str:
    if turn.role == "assistant":
        text = _THINK.sub("", text)
        text = "\n".join(t for t in [text, *(call_block(c) for c in turn.tool_calls)] if t)
    elif turn.role == "tool" and (turn.tool_call_id or turn.name):
        text = result_block(turn.tool_call_id, turn.name or names.get(turn.tool_call_id, ""), text)
    return text.strip()


def flatten(conversation: Conversation, mark_images: bool = True, param: str = "messages") -> Prompt:
    """The conversation as one message; ``mark_images`` puts an ``[image N]`` placeholder where each
    image was (useful when several images are discussed, pointless when the image is the subject).
    ``param`` names the request field of the input in errors."""
    images: list[str] = []
    turns = conversation.turns
    if not conversation.system and len(turns) == 1 and turns[0].role == "user":
        text = _parts(turns[0], images, mark_images, param)
        if len(images) == 1 and text.endswith("[image 1]"):
            text = text[: -len("[image 1]")].rstrip()  # a single image needs no marker
        return Prompt(text, images)
    blocks: list[str] = []
    if conversation.system.strip():
        blocks.append(f"System: {conversation.system.strip()}")
    names = {call.id: call.name for turn in turns for call in turn.tool_calls if call.id}
    for turn in turns:
        text = _block(turn, _parts(turn, images, mark_images, param), names)
        if text:
            blocks.append(f"{_LABELS[turn.role]}: {text}")
    return Prompt("\n\n".join(blocks), images)

"""Flatten OpenAI messages into Grok's single ``message`` string plus the image URLs to upload.

Roles are kept and turns separated (the reference concatenated everything blindly):
a lone user turn is sent as-is; a conversation becomes ``Role: text`` blocks separated by blank
lines, earlier reasoning (``<think>``) is dropped, and tool calls/results are written out.
"""

from __future__ import annotations

import re

import msgspec

from ..errors import InvalidRequest
from .schemas import (
    AssistantMessage,
    Content,
    DeveloperMessage,
    FunctionMessage,
    ImagePart,
    Message,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

MAX_IMAGES = 10
_THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL | re.IGNORECASE)


class Prompt(msgspec.Struct):
    message: str
    image_urls: list[str]


def _parts(content: Content, images: list[str], mark: bool = True) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            if len(images) >= MAX_IMAGES:
                raise InvalidRequest(f"At most {MAX_IMAGES} images per request are supported.", param="messages")
            images.append(url)
            if mark:
                texts.append(f"[image {len(images)}]")
        elif isinstance(part, RefusalPart):
            texts.append(part.refusal)
    return "\n".join(t for t in texts if t)


def _label(msg: Message) -> str:
    if isinstance(msg, SystemMessage | DeveloperMessage):
        return "System"
    if isinstance(msg, UserMessage):
        return "User"
    if isinstance(msg, AssistantMessage):
        return "Assistant"
    return "Tool"


def flatten(messages: list[Message], mark_images: bool = True) -> Prompt:
    """The conversation as one message; ``mark_images`` puts an ``[image N]`` placeholder where each
    image was (useful when several images are discussed, pointless when the image is the subject)."""
    images: list[str] = []
    if len(messages) == 1 and isinstance(messages[0], UserMessage):
        text = _parts(messages[0].content, images, mark_images)
        if len(images) == 1 and text.endswith("[image 1]"):
            text = text[: -len("[image 1]")].rstrip()  # a single image needs no marker
        return Prompt(text, images)
    blocks: list[str] = []
    for msg in messages:
        text = _parts(msg.content, images, mark_images)
        if isinstance(msg, AssistantMessage):
            text = _THINK.sub("", text)
            if isinstance(msg.tool_calls, list):
                calls = [f"[called {c.function.name}({c.function.arguments})]" for c in msg.tool_calls]
                text = "\n".join(t for t in [text, *calls] if t)
        if isinstance(msg, ToolMessage) and isinstance(msg.tool_call_id, str):
            text = f"[result of {msg.tool_call_id}] {text}"
        if isinstance(msg, FunctionMessage) and isinstance(msg.name, str):
            text = f"[result of {msg.name}] {text}"
        text = text.strip()
        if text:
            blocks.append(f"{_label(msg)}: {text}")
    return Prompt("\n\n".join(blocks), images)

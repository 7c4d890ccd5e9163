"""The pictures Imagine answers with, shared by the WebSocket generation and the HTTP edit: each image a real JPEG
asset of the account (its final and a ``-part-0`` preview), and which of them a prompt has moderated.

Prompt markers: ``[[moderate]]`` (or ``[[moderate:all]]``) moderates every image, ``[[moderate:0,2]]`` the images
at those positions.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from .fake_accounts import FakeAccount
from .fake_media import TINY_JPEG
from .fake_state import FakeState

IMAGE_B64 = base64.b64encode(TINY_JPEG).decode()
IMAGE_DATA_URL = "data:image/jpeg;base64," + IMAGE_B64
_MODERATE = re.compile(r"\[\[moderate(?::([^\[\]\n]{0,80}))?\]\]", re.IGNORECASE)


@dataclass
class FakeImage:
    id: str
    url: str  # the final picture's asset path
    preview_url: str


def make_image(state: FakeState, account: FakeAccount) -> FakeImage:
    """A new image owned by ``account``; both its pictures are downloadable by the account only."""
    image_id = state.new_id()
    base = f"users/{account.user_id}/generated/{image_id}"
    image = FakeImage(image_id, f"{base}/image.jpg", f"{base}-part-0/image.jpg")
    state.register_asset(image.url, account.token)
    state.register_asset(image.preview_url, account.token)
    return image


def moderated_positions(prompt: str, count: int) -> set[int]:
    """The positions among ``count`` images that the prompt's ``[[moderate…]]`` markers moderate."""
    found: set[int] = set()
    for spec in _MODERATE.findall(prompt):
        spec = spec.strip().lower()
        if spec in ("", "all"):
            return set(range(count))
        found.update(int(part) for part in spec.split(",") if part.strip().isdigit())
    return {i for i in found if i < count}

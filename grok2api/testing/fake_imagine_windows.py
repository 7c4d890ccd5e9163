"""An account's Imagine windows (images, pro images, edits, videos, 720p videos) and what grok.com's
``quota_info`` says of them; the Imagine endpoints take their queries here."""

from __future__ import annotations

import time

from .fake_accounts import FakeAccount, ModeWindow
from .fake_http import JsonDict

# grok.com's answer key -> the window's name in the account (the gateway stores them under the same names).
IMAGINE_WINDOWS = {
    "image": "imagine-image",
    "imagePro": "imagine-image-pro",
    "imageEdit": "imagine-image-edit",
    "video": "imagine-video",
    "video720p": "imagine-video-720p",
}
# This fake's defaults per tier (grok.com publishes none): basic has no pro images and no 720p video.
IMAGINE_TOTALS: dict[str, dict[str, int]] = {
    "basic": {"image": 40, "imagePro": 0, "imageEdit": 40, "video": 20, "video720p": 0},
    "super": {"image": 200, "imagePro": 50, "imageEdit": 200, "video": 100, "video720p": 30},
    "heavy": {"image": 800, "imagePro": 200, "imageEdit": 800, "video": 400, "video720p": 100},
}


def imagine_window(account: FakeAccount, key: str) -> ModeWindow:
    """The account's window for one Imagine kind (``image``, ``video``, …), opened at its tier's default."""
    name = IMAGINE_WINDOWS[key]
    window = account.windows.get(name)
    if window is None:
        total = IMAGINE_TOTALS.get(account.tier, IMAGINE_TOTALS["basic"])[key]
        window = account.windows[name] = ModeWindow(total=total, remaining=total)
    window.refresh()
    return window


def charge_imagine(account: FakeAccount, key: str) -> bool:
    """One query of an Imagine window (False when it is empty or the tier has none)."""
    return imagine_window(account, key).take()


def quota_info(account: FakeAccount) -> JsonDict:
    out: JsonDict = {}
    for key in IMAGINE_WINDOWS:
        window = imagine_window(account, key)
        entry: JsonDict = {
            "available": window.remaining > 0,
            "remainingQueries": window.remaining,
            "windowSizeSeconds": window.window_seconds,
        }
        if window.total and window.remaining <= 0:
            entry["nextAvailableAt"] = int((time.time() + window.seconds_left()) * 1000)
        out[key] = entry if window.total else None  # grok.com sends null for what the tier lacks
    return out

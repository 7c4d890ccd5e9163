"""What the deployment files (compose.yaml, deploy/kubernetes/) may set: the environment variables grok2api reads,
found in its source (boot configuration) and its settings struct (``GROK2API_<setting>``), so that a misspelt name
fails a test instead of being ignored at run time."""

from __future__ import annotations

import re
from pathlib import Path

from grok2api.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parent.parent
_NAME_IN_SOURCE = re.compile(r"\"(GROK2API_[A-Z0-9_]+|STORAGE_MODE|DATABASE_URL)\"")
# The uid and gid the Containerfile runs as.
_USER_LINE = re.compile(r"^USER\s+(\d+)(?::(\d+))?\s*$", re.MULTILINE)


def environment_names() -> set[str]:
    names = {f"GROK2API_{name.upper()}" for name in SETTING_NAMES}
    for path in (ROOT / "grok2api").rglob("*.py"):
        names.update(_NAME_IN_SOURCE.findall(path.read_text()))
    return names


def image_user() -> tuple[int, int]:
    """(uid, gid) of the Containerfile's last USER line."""
    found = _USER_LINE.findall((ROOT / "Containerfile").read_text())
    assert found, "the Containerfile names no numeric USER"
    uid, gid = found[-1]
    return int(uid), int(gid or uid)

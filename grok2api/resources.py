"""Where the top-level ``web/`` and ``migrations/`` directories are, however grok2api was installed.

They live beside the package in the source tree (editable installs use them there); a regular
``pip install .`` copies them to ``<prefix>/share/grok2api/``; an environment variable overrides both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def resource_dir(name: str, env_var: str, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    override = env.get(env_var, "").strip()
    if override:
        return Path(override)
    for base in (_SOURCE_ROOT, Path(sys.prefix) / "share" / "grok2api", Path.cwd()):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    return _SOURCE_ROOT / name

"""The on-disk media cache: ``images/`` and ``videos/`` under the data dir.

Writes are atomic (hidden temp file, then rename), so a reader never sees half a file and several
workers may share the directory. Eviction is least-recently-used: serving a file bumps its access
time, and the oldest-accessed files go first when a directory grows past its cap. All file work
runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

KINDS = ("image", "video")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi")
# A public name is one path segment of safe characters; it cannot start with a dot (temp files
# and dotfiles stay private) and holds no separator, so it can never leave its directory.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_HEAD_BYTES = 16


def kind_of(name: str) -> str:
    return "video" if name.lower().endswith(VIDEO_SUFFIXES) else "image"


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def sniff_type(head: bytes, name: str = "") -> str:
    """The Content-Type by the file's first bytes (the extension only breaks a tie for videos)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:10] == b"qt" else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return "application/octet-stream"


@dataclass(frozen=True)
class CachedFile:
    path: Path
    stat: os.stat_result
    content_type: str


class MediaCache:
    def __init__(self, root: Path) -> None:
        self.dirs = {"image": root / "images", "video": root / "videos"}
        self._evicting = {kind: asyncio.Lock() for kind in KINDS}

    def path_for(self, name: str) -> Path | None:
        """The cache file for a public name, or None for a name that is not allowed."""
        if not valid_name(name):
            return None
        return self.dirs[kind_of(name)] / name

    async def lookup(self, name: str) -> CachedFile | None:
        """The cached file (marked as just used), or None on a miss."""
        path = self.path_for(name)
        if path is None:
            return None
        return await asyncio.to_thread(_open_and_touch, path, name)

    async def write(self, name: str, data: bytes) -> Path:
        path = self.path_for(name)
        if path is None:
            raise ValueError(f"not a valid media name: {name!r}")
        await asyncio.to_thread(_atomic_write, path, data)
        return path

    async def evict(self, kind: str, cap_bytes: int, keep: str | None = None) -> int:
        """Delete least-recently-used files until ``kind`` fits in ``cap_bytes``; ``keep`` is spared
        (the file just written, which a caller is about to use). Returns how many were deleted."""
        async with self._evicting[kind]:
            return await asyncio.to_thread(_evict, self.dirs[kind], cap_bytes, keep)

    async def usage(self, kind: str) -> tuple[int, int]:
        """(file count, total bytes) of one kind."""
        return await asyncio.to_thread(_usage, self.dirs[kind])

    async def clear(self, kind: str) -> int:
        """Delete every cached file of one kind (downloads in progress finish normally)."""
        async with self._evicting[kind]:
            return await asyncio.to_thread(_clear, self.dirs[kind])


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return [e for e in it if not e.name.startswith(".") and e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _open_and_touch(path: Path, name: str) -> CachedFile | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
            st = os.fstat(fh.fileno())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    # Access time is the LRU clock; the modification time stays, so ETag/Last-Modified are stable.
    try:
        os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
    except OSError:
        pass  # evicted meanwhile or a read-only cache: serving still works
    return CachedFile(path, st, sniff_type(head, name))


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _evict(directory: Path, cap_bytes: int, keep: str | None) -> int:
    files = []
    total = 0
    for entry in _entries(directory):
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        total += st.st_size
        files.append((st.st_atime_ns, st.st_size, entry.name))
    deleted = 0
    for _, size, name in sorted(files):
        if total <= cap_bytes:
            break
        if name == keep:
            continue
        try:
            (directory / name).unlink()
        except FileNotFoundError:
            pass
        else:
            deleted += 1
        total -= size
    return deleted


def _usage(directory: Path) -> tuple[int, int]:
    count = total = 0
    for entry in _entries(directory):
        try:
            total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
        count += 1
    return count, total


def _clear(directory: Path) -> int:
    deleted = 0
    for entry in _entries(directory):
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        deleted += 1
    return deleted

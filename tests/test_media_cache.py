from __future__ import annotations

import os
from pathlib import Path

import pytest

from grok2api.media.cache import MediaCache, kind_of, sniff_type, valid_name
from grok2api.testing.fake_grok import TINY_JPEG, TINY_MP4


def _set_atime(path: Path, seconds_ago: float) -> None:
    st = path.stat()
    os.utime(path, ns=(int((st.st_mtime - seconds_ago) * 1e9), st.st_mtime_ns))


@pytest.mark.parametrize(
    "name",
    ["..", ".", "../x.jpg", "..%2Fx", "a/b.jpg", "a\\b.jpg", "..\\..\\x", ".hidden.jpg", "", "x\x00.jpg", "-x.jpg"],
)
def test_unsafe_names_have_no_path(tmp_path: Path, name: str) -> None:
    assert not valid_name(name)
    assert MediaCache(tmp_path).path_for(name) is None


def test_names_pick_their_directory(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path)
    assert cache.path_for("users-u-generated-i-image.jpg") == tmp_path / "images" / "users-u-generated-i-image.jpg"
    assert cache.path_for("users-u-generated-v-generated_video.MP4") == (
        tmp_path / "videos" / "users-u-generated-v-generated_video.MP4"
    )
    assert kind_of("a.webm") == "video"
    assert kind_of("a.png") == "image"


def test_sniff_type_reads_content_not_extension() -> None:
    assert sniff_type(TINY_JPEG[:16], "x.png") == "image/jpeg"
    assert sniff_type(b"\x89PNG\r\n\x1a\n" + bytes(8), "x.jpg") == "image/png"
    assert sniff_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "x") == "image/webp"
    assert sniff_type(b"GIF89a", "x") == "image/gif"
    assert sniff_type(TINY_MP4[:16], "x.jpg") == "video/mp4"
    assert sniff_type(b"\x1a\x45\xdf\xa3", "x") == "video/webm"
    assert sniff_type(b"<html>", "x.jpg") == "application/octet-stream"


async def test_write_is_atomic_and_lookup_finds_it(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path)
    assert await cache.lookup("a.jpg") is None
    path = await cache.write("a.jpg", TINY_JPEG)
    assert path.read_bytes() == TINY_JPEG
    assert [p.name for p in path.parent.iterdir()] == ["a.jpg"]  # no temp file left behind
    found = await cache.lookup("a.jpg")
    assert found is not None
    assert found.content_type == "image/jpeg"
    assert found.stat.st_size == len(TINY_JPEG)
    with pytest.raises(ValueError):
        await cache.write("../a.jpg", TINY_JPEG)


async def test_lookup_marks_use_but_keeps_mtime(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path)
    path = await cache.write("a.jpg", TINY_JPEG)
    _set_atime(path, 3600)
    before = path.stat()
    await cache.lookup("a.jpg")
    after = path.stat()
    assert after.st_atime > before.st_atime + 3000
    assert after.st_mtime_ns == before.st_mtime_ns  # ETag and Last-Modified stay stable


async def test_evict_drops_least_recently_used_first(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path)
    blob = b"\xff\xd8\xff" + bytes(997)  # 1000 bytes each
    for i, age in enumerate((300, 100, 200)):
        _set_atime(await cache.write(f"f{i}.jpg", blob), age)
    # f0 is the oldest by creation order too; a read makes it the most recently used.
    await cache.lookup("f0.jpg")
    deleted = await cache.evict("image", 2000)
    assert deleted == 1
    assert sorted(p.name for p in cache.dirs["image"].iterdir()) == ["f0.jpg", "f1.jpg"]  # f2 was least recent


async def test_evict_spares_the_kept_file_and_ignores_temp_files(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path)
    blob = bytes(1000)
    _set_atime(await cache.write("old.jpg", blob), 500)
    _set_atime(await cache.write("new.jpg", blob), 1000)  # older access, but it is the one just written
    (cache.dirs["image"] / ".new.jpg.tmp").write_bytes(bytes(5000))
    assert await cache.evict("image", 1500, keep="new.jpg") == 1
    assert sorted(p.name for p in cache.dirs["image"].iterdir()) == [".new.jpg.tmp", "new.jpg"]
    assert await cache.evict("image", 10_000) == 0


async def test_usage_and_clear_per_kind(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path)
    assert await cache.usage("image") == (0, 0)  # directories are created lazily
    await cache.write("a.jpg", bytes(100))
    await cache.write("b.jpg", bytes(50))
    await cache.write("v.mp4", bytes(70))
    (cache.dirs["image"] / ".partial.tmp").write_bytes(bytes(10))
    assert await cache.usage("image") == (2, 150)
    assert await cache.usage("video") == (1, 70)
    assert await cache.clear("image") == 2
    assert await cache.usage("image") == (0, 0)
    assert (cache.dirs["image"] / ".partial.tmp").exists()  # a download in progress is left alone
    assert await cache.usage("video") == (1, 70)

"""What a video request asks for: OpenAI's seconds and sizes on grok.com's durations, aspect ratios and resolutions."""

from __future__ import annotations

import pytest

from grok2api.errors import InvalidRequest
from grok2api.openai.video_request import duration_of, frame_of


@pytest.mark.parametrize(
    ("seconds", "duration"),
    [
        (None, 6),
        ("4", 6),  # OpenAI's values round up to grok.com's
        ("8", 10),
        ("12", 15),
        ("6", 6),  # grok.com's own, as strings or numbers
        (10, 10),
        (15.0, 15),
        (" 10s ", 10),
        (1, 6),
        (6.5, 10),
    ],
)
def test_seconds_round_up_to_grok_durations(seconds: str | int | float | None, duration: int) -> None:
    assert duration_of(seconds) == duration


@pytest.mark.parametrize("seconds", ["16", 0, -4, "soon", "4 minutes", True])
def test_seconds_beyond_fifteen_or_not_a_length_are_refused(seconds: str | int) -> None:
    with pytest.raises(InvalidRequest) as info:
        duration_of(seconds)
    assert info.value.param == "seconds"


@pytest.mark.parametrize(
    ("size", "frame"),
    [
        (None, ("9:16", "720p", "720x1280")),  # OpenAI's default size
        ("720x1280", ("9:16", "720p", "720x1280")),
        ("1280x720", ("16:9", "720p", "1280x720")),
        ("1024x1792", ("9:16", "720p", "720x1280")),
        ("1792x1024", ("16:9", "720p", "1280x720")),
        ("1024x1024", ("1:1", "720p", "720x720")),
        ("1000x1040", ("1:1", "720p", "720x720")),
        ("854x480", ("16:9", "480p", "854x480")),
        ("640x480", ("3:2", "480p", "720x480")),
        ("480X720", ("2:3", "480p", "480x720")),
    ],
)
def test_sizes_pick_the_nearest_aspect_ratio_and_resolution(size: str | None, frame: tuple[str, str, str]) -> None:
    assert frame_of(size) == frame


def test_grok_aspect_ratio_and_resolution_win_over_size() -> None:
    assert frame_of("720x1280", "16:9", "480p") == ("16:9", "480p", "854x480")
    for bad in ({"size": "huge"}, {"size": "00x720"}, {"aspect_ratio": "4:1"}, {"resolution": "4k"}):
        with pytest.raises(InvalidRequest):
            frame_of(bad.get("size"), bad.get("aspect_ratio"), bad.get("resolution"))

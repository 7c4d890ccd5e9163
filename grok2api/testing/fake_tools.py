"""Scripted answers for tool calls and structured output: a marker in the prompt picks the scenario.

Grok is told to write each call as ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``; these answers
do so, validly or not. An invalid answer carries ``INVALID``, so a repair turn (which shows Grok its last
answer) is recognisable: ``tool-repair`` and ``json-repair`` answer validly once they see it, the
``-never`` scenarios never do. ``[[tool-done]]`` (put in a tool result by a test) means the results came
back: the fake then answers in text as usual.
"""

from __future__ import annotations

from typing import Any

from .fake_chat_request import Markers
from .fake_http import encode_json

INVALID = "FAKE-INVALID"
WEATHER_CALL: dict[str, Any] = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
TIME_CALL: dict[str, Any] = {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}}
TRIP_CALL: dict[str, Any] = {
    "name": "plan_trip",
    "arguments": {
        "destination": {"city": "Lisbon", "country": "PT"},
        "days": 3,
        "travellers": [{"name": "Ada", "age": 36}, {"name": "Charles"}],
        "pace": "relaxed",
    },
}
BAD_TRIP_CALL: dict[str, Any] = {
    "name": "plan_trip",
    "arguments": {"destination": {"city": "Lisbon"}, "days": "three", "travellers": "Ada", "pace": INVALID},
}
PERSON = {"name": "Ada Lovelace", "born": 1815, "languages": ["en", "fr"]}
BAD_PERSON = {"name": "Ada Lovelace", "born": INVALID}
PROSE = "Let me look that up. "


def block(call: dict[str, Any]) -> str:
    return "<tool_call>" + encode_json(call).decode() + "</tool_call>"


def _text(prompt: str, markers: Markers) -> str | None:
    repaired = INVALID in prompt
    if markers.has("tool-call"):
        return block(WEATHER_CALL)
    if markers.has("tool-prose"):
        return PROSE + block(WEATHER_CALL)
    if markers.has("tool-parallel"):
        return block(WEATHER_CALL) + "\n" + block(TIME_CALL)
    if markers.has("tool-split"):
        return PROSE + "```xml\n" + block(WEATHER_CALL) + "\n```\nI will wait for the result."
    if markers.has("tool-nested"):
        return block(TRIP_CALL)
    if markers.has("tool-repair"):
        return block(TRIP_CALL if repaired else BAD_TRIP_CALL)
    if markers.has("tool-never"):
        return PROSE + block(BAD_TRIP_CALL)
    if markers.has("json-valid"):
        return encode_json(PERSON).decode()
    if markers.has("json-fenced"):
        return "```json\n" + encode_json(PERSON).decode() + "\n```"
    if markers.has("json-repair"):
        return encode_json(PERSON if repaired else BAD_PERSON).decode()
    if markers.has("json-never"):
        return "Here it is: " + encode_json(BAD_PERSON).decode()
    return None


def tool_answer(prompt: str, markers: Markers) -> list[str] | None:
    """The answer tokens of a tool or JSON scenario (None: no scenario, or the results are back).
    ``tool-split`` sends two characters per frame, so every tag arrives in pieces."""
    if markers.has("tool-done"):
        return None
    text = _text(prompt, markers)
    if text is None:
        return None
    size = 2 if markers.has("tool-split") else 6
    return [text[i : i + size] for i in range(0, len(text), size)]

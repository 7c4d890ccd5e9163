"""The text scenarios of an E1 answer: thinking, web search, citations, artifacts and odd tokens."""

from __future__ import annotations

import re

from .fake_chat_request import Chat
from .fake_http import JsonDict, encode_json
from .fake_script import Script
from .fake_tools import tool_answer

EMOJI_TOKENS = ["Family ", "👨\u200d", "👩\u200d👧", " flag ", "🇯", "🇵", " 漢", "字 ", "cafe", "\u0301 "]
THINK_TOKENS = ["Let me ", "think ", "about ", "this."]
ARTIFACT_TOKEN = ' Code: <xaiArtifact contentType="text/python">print(1)</xaiArtifact>'
CITE_CARD_ID = "k9"
CITE_TOKEN = (
    f'<grok:render card_id="{CITE_CARD_ID}" card_type="citation_card" type="render_inline_citation">'
    '<argument name="citation_id">0</argument></grok:render>'
)
SEARCH_RESULTS = [
    {
        "url": "https://example.com/fake-grok/first",
        "title": "First result",
        "preview": "A preview that spans\ntwo lines.",
    },
    {"url": "https://example.org/fake-grok/second", "title": "Second result", "preview": "Another preview."},
]
TOOL_CARD_ID = "t1"

_WORD_RE = re.compile(r"\S+\s*|\s+")


def thinking_phase(script: Script) -> None:
    markers = script.chat.markers
    think = markers.has("think") or markers.has("unclosed-think")
    if think:
        script.thinking("Thinking about your request", tag="header")
    if markers.has("search"):
        _search_frames(script)
    if think:
        for text in THINK_TOKENS:
            script.thinking(text)


def _search_frames(script: Script) -> None:
    query = script.chat.prompt[-60:] or "fake grok"
    args = encode_json({"query": query}).decode()
    card = (
        f"<xai:tool_usage_card><xai:tool_usage_card_id>{TOOL_CARD_ID}</xai:tool_usage_card_id>"
        f"<xai:tool_name>web_search</xai:tool_name><xai:tool_args><![CDATA[{args}]]></xai:tool_args>"
        "</xai:tool_usage_card>"
    )
    structured = {"toolUsageCardId": TOOL_CARD_ID, "webSearch": {"args": {"query": query}}}
    script.token(card, thinking=True, tag="tool_usage_card", toolUsageCardId=TOOL_CARD_ID, toolUsageCard=structured)
    script.frame(
        {
            "isThinking": True,
            "toolUsageCardId": TOOL_CARD_ID,
            "webSearchResults": {"results": SEARCH_RESULTS},
            "responseId": script.response_id,
            "messageTag": "tool_usage_card",
        }
    )


def answer_phase(script: Script) -> JsonDict:
    """Final answer tokens with the requested oddities; returns extra modelResponse fields."""
    markers = script.chat.markers
    tokens = _answer_tokens(script.chat)
    fields: JsonDict = {}
    if markers.has("header"):
        script.token("Answering", tag="header")
    for index, text in enumerate(tokens):
        script.token(text)
        if index == 0:
            _after_first_token(script, fields)
    if markers.has("artifact"):
        script.token(ARTIFACT_TOKEN)
    if markers.has("emoji"):
        for text in EMOJI_TOKENS:
            script.token(text)
    if markers.has("search"):
        fields["webSearchResults"] = SEARCH_RESULTS
    return fields


def _after_first_token(script: Script, fields: JsonDict) -> None:
    markers = script.chat.markers
    if markers.has("cite"):
        card = encode_json(
            {
                "id": CITE_CARD_ID,
                "type": "render_inline_citation",
                "cardType": "citation_card",
                "url": SEARCH_RESULTS[0]["url"],
            }
        ).decode()
        script.frame({"cardAttachment": {"jsonData": card}, "messageTag": "final", "responseId": script.response_id})
        script.token(CITE_TOKEN)
        fields["cardAttachmentsJson"] = [card]
    if markers.has("list-token"):
        script.token(["a", "list", "token"])
    if markers.has("dict-token"):
        script.token({"text": "a dict token", "kind": "deepsearch"})
    if markers.has("empty-token"):
        script.token("")


def _answer_tokens(chat: Chat) -> list[str]:
    return tool_answer(chat.prompt, chat.markers) or answer_tokens(chat.prompt, chat.markers.token_count)


def answer_tokens(prompt: str, token_count: int | None) -> list[str]:
    """Exactly ``token_count`` numbered tokens, or a greeting that echoes the end of the prompt."""
    if token_count is not None:
        return [f"tok{i} " for i in range(token_count)]
    return _wordish(f"Hello! You said: {prompt[-40:]}")


def _wordish(text: str) -> list[str]:
    """Tokens of about four characters that follow word boundaries: whole short words, long words in pieces."""
    tokens: list[str] = []
    for word in _WORD_RE.findall(text):
        if len(word.rstrip()) <= 6:
            tokens.append(word)
        else:
            tokens.extend(word[i : i + 4] for i in range(0, len(word), 4))
    return tokens

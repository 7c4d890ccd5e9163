"""The lines of one E1 answer and the envelope around them: conversation, user and model responses, metadata.

Scenario modules add tokens and frames to a ``Script``; ``fake_stream`` writes its steps out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fake_chat_request import Chat
from .fake_errors import ERR_ANTIBOT, ERR_RATE, USAGE_LIMIT_MESSAGE
from .fake_faults import Fault
from .fake_http import JsonDict, encode_json, now_iso
from .fake_video import VideoRecord


@dataclass(slots=True)
class Step:
    kind: str  # obj: JSON frame; line: raw text framed like a line; verbatim: bytes as they are; sleep; abort; trickle
    obj: Any = None
    raw: bytes = b""
    seconds: float = 0.0
    token: bool = False


class Script:
    """The lines of one E1 answer, built in order, keeping ``modelResponse.message`` equal to the final tokens."""

    def __init__(self, chat: Chat, fault: Fault | None, ids: Callable[[], str]) -> None:
        self.chat = chat
        self.fault = fault
        self.steps: list[Step] = []
        self.final: list[str] = []
        self.ended = False
        self.conversation_id = ids()
        self.user_response_id = ids()
        self.response_id = ids()
        self.video: VideoRecord | None = None  # the generation this answer carries
        self.delivered = False  # every step reached the client
        self._final_count = 0
        self._mid_done = False

    @property
    def fault_name(self) -> str | None:
        return self.fault.name if self.fault else None

    def add(self, step: Step) -> None:
        if not self.ended:
            self.steps.append(step)

    def line(self, obj: JsonDict, *, token: bool = False) -> None:
        self.add(Step("obj", obj=obj, token=token))

    def frame(self, response: JsonDict, *, token: bool = False) -> None:
        self.line({"result": {"response": response}}, token=token)

    def token_response(self, value: Any, thinking: bool = False, tag: str = "final", **extra: Any) -> JsonDict:
        return {
            "token": value,
            "isThinking": thinking,
            "isSoftStop": False,
            "responseId": self.response_id,
            "messageTag": tag,
            **extra,
        }

    def token(self, value: Any, *, thinking: bool = False, tag: str = "final", **extra: Any) -> None:
        if self.ended:
            return
        self.frame(self.token_response(value, thinking, tag, **extra), token=True)
        if tag == "final" and not thinking and isinstance(value, str):
            self.final.append(value)
            self._final_count += 1
            if self._final_count == 2:
                self.mid_stream()

    def thinking(self, text: str, tag: str = "assistant") -> None:
        self.token(text, thinking=True, tag=tag, messageStepId=0)

    def mid_stream(self) -> None:
        """Everything that happens 'after a few answer tokens': late thinking and in-stream faults."""
        if self._mid_done:
            return
        self._mid_done = True
        if self.chat.markers.has("late-think"):
            self.thinking("Wait, ")
            self.thinking("one more thought.")
        if self.fault is not None:
            _inject_mid_fault(self, self.fault)


def _inject_mid_fault(script: Script, fault: Fault) -> None:
    name = fault.name
    if name == "inband-7":
        script.line(ERR_ANTIBOT)
    elif name == "inband-8":
        script.line(ERR_RATE)
    elif name == "inband-13":
        script.line({"error": {"code": 13, "message": "Internal error", "details": []}})
    elif name == "inband-usage":
        script.frame({"error": {"message": USAGE_LIMIT_MESSAGE}, "responseId": script.response_id})
    elif name == "reset":
        script.add(Step("abort"))
    elif name == "malformed":
        script.add(Step("line", raw=b'{"result":{"response":{"token":"broken'))
    elif name == "blank":
        script.add(Step("verbatim", raw=b"\n\n \r\n"))
    elif name == "stall-mid":
        script.add(Step("sleep", seconds=fault.seconds(1.0)))
    elif name == "trickle":
        script.add(Step("trickle", seconds=fault.seconds(1.0)))
    elif name == "long-line":
        script.token("x" * (1 << 20))
    elif name == "multi-json":
        _two_tokens_one_line(script)
    if name in ("inband-7", "inband-8", "inband-13", "inband-usage", "reset"):
        script.ended = True


def _two_tokens_one_line(script: Script) -> None:
    parts = [" two", " on one line"]
    frames = [encode_json({"result": {"response": script.token_response(part)}}) for part in parts]
    script.add(Step("line", raw=b"".join(frames), token=True))
    script.final.extend(parts)


def conversation_line(script: Script) -> JsonDict:
    now = now_iso()
    return {
        "result": {
            "conversation": {
                "conversationId": script.conversation_id,
                "title": "New conversation",
                "starred": False,
                "createTime": now,
                "modifyTime": now,
                "systemPromptName": "",
                "temporary": script.chat.temporary,
                "mediaTypes": [],
            }
        }
    }


def _message_fields() -> JsonDict:
    """The bulk of fields a userResponse/modelResponse carries and nobody reads."""
    return {
        "createTime": now_iso(),
        "manual": False,
        "partial": False,
        "shared": False,
        "query": "",
        "queryType": "",
        "webSearchResults": [],
        "xpostIds": [],
        "xposts": [],
        "generatedImageUrls": [],
        "imageAttachments": [],
        "fileAttachments": [],
        "cardAttachmentsJson": [],
        "fileUris": [],
        "fileAttachmentsMetadata": [],
        "isControl": False,
        "steps": [],
        "mediaTypes": [],
    }


def user_response(script: Script) -> JsonDict:
    chat = script.chat
    user: JsonDict = {"responseId": script.user_response_id, "message": chat.message, "sender": "human"}
    user.update(_message_fields())
    user["fileAttachments"] = chat.attachments
    if chat.model is not None and not chat.markers.has("no-model"):
        user["model"] = chat.model
    rid = script.user_response_id
    return {"userResponse": user, "isThinking": False, "isSoftStop": False, "responseId": rid}


def model_response(script: Script, **fields: Any) -> JsonDict:
    chat = script.chat
    model: JsonDict = {
        "responseId": script.response_id,
        "message": "".join(script.final),
        "sender": "ASSISTANT",
        "parentResponseId": script.user_response_id,
    }
    model.update(_message_fields())
    model.update(fields)
    model["metadata"] = {"llm_info": {"modelHash": "fake-grok-1"}}
    if chat.model is not None and not chat.markers.has("no-model"):
        model["model"] = chat.model
    if script.fault_name == "model-error":
        model["error"] = "The model encountered an error while generating a response."
    elif script.fault_name == "stream-errors":
        model["streamErrors"] = [{"code": 13, "message": "Upstream stream interrupted"}]
    return {"modelResponse": model, "isThinking": False, "isSoftStop": False, "responseId": script.response_id}


def finish(script: Script, **model_fields: Any) -> None:
    """modelResponse, finalMetadata and the title line, unless a fault ended the stream first."""
    script.mid_stream()
    if script.fault_name == "no-model-response":
        return
    script.frame(model_response(script, **model_fields))
    script.frame(
        {
            "finalMetadata": {"followUpSuggestions": [], "feedbackLabels": [], "toolsUsed": {}},
            "isThinking": False,
            "isSoftStop": True,
            "responseId": script.response_id,
        }
    )
    if not script.chat.temporary:
        title = " ".join(script.chat.prompt.split()[:5]) or "New conversation"
        script.line({"result": {"title": {"newTitle": title}}})

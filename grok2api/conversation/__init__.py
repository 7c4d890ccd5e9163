"""The neutral side between the client APIs and grok.com: the conversation model (``model``), the answer
events (``events``), the prompt flattening (``prompt``) and the run that answers one (``run``)."""

from .model import (
    Conversation,
    Image,
    Part,
    ResponseFormat,
    Role,
    Text,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Turn,
    text_turn,
)

__all__ = [
    "Conversation",
    "Image",
    "Part",
    "ResponseFormat",
    "Role",
    "Text",
    "ToolCall",
    "ToolChoice",
    "ToolSpec",
    "Turn",
    "text_turn",
]

"""grok2api: an OpenAI-compatible gateway in front of a pool of Grok web accounts."""

__version__ = "0.1.0"

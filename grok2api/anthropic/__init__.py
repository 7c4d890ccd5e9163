"""Anthropic's Messages API (``/v1/messages``), a client face over the neutral conversation."""

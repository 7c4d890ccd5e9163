"""The shared fixtures are in harness.py (the name ``fixtures`` is taken by pytest's own plugin)."""

pytest_plugins = ["harness"]

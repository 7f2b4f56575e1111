"""Bindings and tools: ASGI app, runner, CLI, demo."""

"""Adapters: where rooms live and how broadcasts reach sockets (in memory, Redis later)."""

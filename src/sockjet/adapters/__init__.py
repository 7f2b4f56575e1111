"""Adapters: where rooms live and how broadcasts reach sockets (in memory, between worker
processes, on Redis)."""

"""The Python client (tools layer): asyncio ``AsyncClient`` and the blocking ``Client``."""

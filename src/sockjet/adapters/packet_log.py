"""What the in-memory adapter keeps for connection state recovery: the events broadcast in the
last ``max_age`` seconds, each with its offset, and the sessions of the sockets that went away
in that time. Both are pruned by age: as events are appended, and by a timer that runs only
while something is kept. A busy server holds one entry per broadcast of the last
``max_age`` seconds (the arguments are shared with the broadcast, not copied)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from ..socketio.adapter import BroadcastOptions
from ..socketio.recovery import Session

#: the timer's period at most (Node prunes every 60 s)
_PRUNE_EVERY = 60.0


class PacketLog:
    """The events and sessions of one namespace, kept ``max_age`` seconds."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        #: offsets of this log start with it, so that one of another process is never taken
        #: for one of ours
        self.prefix = secrets.token_hex(3) + "-"
        #: (when, sequence number, [event, *args], options)
        self.entries: deque[tuple[float, int, list[Any], BroadcastOptions]] = deque()
        self.next_seq = 0
        #: sessions of sockets that went away, by private id
        self.sessions: dict[str, Session] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, data: list[Any], opts: BroadcastOptions) -> str:
        """Log a broadcast; its offset."""
        now = time.monotonic()
        self._prune_entries(now)
        seq = self.next_seq
        self.next_seq = seq + 1
        self.entries.append((now, seq, data, opts))
        if self._timer is None:
            self._schedule()
        return f"{self.prefix}{seq:x}"

    def persist(self, session: Session) -> None:
        self.sessions[session.pid] = session
        if self._timer is None:
            self._schedule()

    def take(self, pid: str) -> Session | None:
        """The session of ``pid`` if it has not expired (it is given once)."""
        session = self.sessions.pop(pid, None)
        if session is None or time.monotonic() - session.disconnected_at > self.max_age:
            return None
        return session

    def after(self, offset: str) -> Iterator[tuple[list[Any], BroadcastOptions, str]] | None:
        """The events logged after the one of ``offset`` (``None`` if that one is not in the
        log: unknown, or pruned, so that events may have been missed)."""
        if not offset.startswith(self.prefix):
            return None
        try:
            seq = int(offset[len(self.prefix):], 16)
        except ValueError:
            return None
        if not self.entries or not self.entries[0][1] <= seq < self.next_seq:
            return None
        start = seq - self.entries[0][1] + 1
        return ((data, opts, f"{self.prefix}{n:x}")
                for _, n, data, opts in list(self.entries)[start:])

    def _prune_entries(self, now: float) -> None:
        entries = self.entries
        cutoff = now - self.max_age
        while entries and entries[0][0] < cutoff:
            entries.popleft()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving yet: the next append or persist schedules it
        self._timer = loop.call_later(min(_PRUNE_EVERY, self.max_age), self._prune)

    def _prune(self) -> None:
        self._timer = None
        now = time.monotonic()
        self._prune_entries(now)
        cutoff = now - self.max_age
        for pid in [pid for pid, s in self.sessions.items() if s.disconnected_at < cutoff]:
            del self.sessions[pid]
        if self.entries or self.sessions:
            self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.entries.clear()
        self.sessions.clear()

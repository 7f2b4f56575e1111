"""Passing connections between the worker processes of one server.

Every worker accepts connections on the same listening socket, so the requests of one Engine.IO
session may reach any of them. A session id names the worker that owns the session (its first
character, see :func:`tagged_sid_factory`); a worker that reads a request for a session it does
not own passes the connection itself, with the bytes it already read, to the owner over a Unix
socket (``SCM_RIGHTS``), and the owner serves it from there on: no proxy hop and no copy. The
owner checks each later request of a keep-alive connection the same way, so a connection can be
passed on again.

A hand-off is a frame on a Unix stream socket from the sender to the owner: 4 bytes of length
(big-endian), then the bytes already read; the client's socket travels as ancillary data with
the frame's first bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("sockjet.workers")

#: the base64url alphabet: a session id's first character names its worker
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MAX_WORKERS = len(ALPHABET)
_SID_LENGTH = 20
#: a request line longer than this is never handed off (the local limits answer it)
MAX_REQUEST_LINE = 16384
_HEADER = 4
#: how long a sender keeps trying to reach an owner that is (re)starting
_CONNECT_PATIENCE = 3.0
_READ_SIZE = 65536


def tagged_sid_factory(index: int) -> Callable[[], str]:
    """Session ids of worker ``index``: 20 URL-safe characters, the first naming the worker
    (114 random bits remain)."""
    if not 0 <= index < MAX_WORKERS:
        raise ValueError(f"at most {MAX_WORKERS} workers")
    tag = ALPHABET[index]
    return lambda: tag + secrets.token_urlsafe(15)[1:]


def sid_in_request_line(line: bytes) -> bytes | None:
    """The ``sid`` query parameter of an HTTP request line, if it has one."""
    start = line.find(b"sid=")
    while start > 0:
        if line[start - 1] in b"?&":
            start += 4
            end = start
            while end < len(line) and line[end] not in b"& #":
                end += 1
            return line[start:end]
        start = line.find(b"sid=", start + 4)
    return None


def owner_of(sid: bytes, count: int) -> int | None:
    """The worker a session id names, or ``None`` for an id no worker made."""
    if len(sid) != _SID_LENGTH:
        return None
    index = ALPHABET.find(chr(sid[0]))
    return index if 0 <= index < count else None


def socket_path(directory: str, index: int) -> str:
    return str(Path(directory) / f"handoff-{index}.sock")


# the protocol factory the receiver builds connections with: (initial bytes) -> protocol
ConnectionFactory = Callable[[bytes], asyncio.Protocol]


class Handoff:
    """One worker's end: receives connections for its sessions, passes on the others."""

    def __init__(self, index: int, count: int, directory: str) -> None:
        if not 0 <= index < count <= MAX_WORKERS:
            raise ValueError(f"worker index {index} of {count} (at most {MAX_WORKERS})")
        self.index = index
        self.count = count
        self.directory = directory
        self._listener: socket.socket | None = None
        self._peers: dict[int, socket.socket] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._inbound: set[socket.socket] = set()
        self._factory: ConnectionFactory | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- deciding -------------------------------------------------------------------------------

    def owner(self, request_line: bytes) -> int | None:
        """The other worker that owns the session this request line is for, if any."""
        sid = sid_in_request_line(request_line)
        if sid is None:
            return None
        owner = owner_of(sid, self.count)
        return owner if owner is not None and owner != self.index else None

    # -- receiving ------------------------------------------------------------------------------

    async def start(self, factory: ConnectionFactory) -> None:
        """Listen for connections handed to this worker; ``factory(initial)`` makes the
        protocol that serves each (it is given the bytes the sender already read)."""
        self._factory = factory
        path = socket_path(self.directory, self.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by the worker this one replaces
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(self.count * 4)
        listener.setblocking(False)
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        self._inbound.add(conn)
        buffer = bytearray()
        fds: deque[int] = deque()
        asyncio.get_running_loop().add_reader(conn.fileno(), self._readable, conn, buffer, fds)

    def _readable(self, conn: socket.socket, buffer: bytearray, fds: deque[int]) -> None:
        try:
            data, received, _flags, _addr = socket.recv_fds(conn, _READ_SIZE, 8)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, received = b"", []
        fds.extend(received)
        if not data:
            self._drop_inbound(conn, fds)
            return
        buffer += data
        while len(buffer) >= _HEADER:
            size = int.from_bytes(buffer[:_HEADER], "big")
            if len(buffer) < _HEADER + size:
                break
            initial = bytes(buffer[_HEADER:_HEADER + size])
            del buffer[:_HEADER + size]
            if not fds:  # a frame without its socket: the sender is broken
                log.error("a hand-off arrived without its connection; dropping the link")
                self._drop_inbound(conn, fds)
                return
            self._adopt(fds.popleft(), initial)

    def _drop_inbound(self, conn: socket.socket, fds: deque[int]) -> None:
        asyncio.get_running_loop().remove_reader(conn.fileno())
        self._inbound.discard(conn)
        conn.close()
        while fds:
            os.close(fds.popleft())

    def _adopt(self, fd: int, initial: bytes) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            return
        sock.setblocking(False)
        factory = self._factory
        assert factory is not None
        task = asyncio.ensure_future(asyncio.get_running_loop().connect_accepted_socket(
            lambda: factory(initial), sock))
        self._tasks.add(task)
        task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not serve a connection handed over: %r", task.exception())

    # -- sending --------------------------------------------------------------------------------

    async def send(self, owner: int, client: socket.socket, initial: bytes) -> bool:
        """Pass ``client`` (with the bytes already read from it) to worker ``owner``; ``False``
        when the owner cannot be reached (the caller then serves the request itself)."""
        lock = self._locks.get(owner)
        if lock is None:
            lock = self._locks[owner] = asyncio.Lock()
        async with lock:
            for attempt in range(2):  # a stale link to a restarted owner is replaced once
                peer = await self._peer(owner)
                if peer is None:
                    return False
                try:
                    await self._send_frame(peer, client, initial)
                except OSError as exc:
                    self._forget_peer(owner)
                    if attempt:
                        log.warning("cannot hand a connection to worker %d: %s", owner, exc)
                        return False
                    continue
                log.debug("passed a connection to worker %d", owner)
                return True
        return False

    async def _peer(self, owner: int) -> socket.socket | None:
        peer = self._peers.get(owner)
        if peer is not None:
            return peer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CONNECT_PATIENCE
        path = socket_path(self.directory, owner)
        while True:
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            peer.setblocking(False)
            try:
                await loop.sock_connect(peer, path)
            except OSError:
                peer.close()
                if loop.time() >= deadline:
                    log.warning("worker %d does not take connections (%s)", owner, path)
                    return None
                await asyncio.sleep(0.05)  # the owner is starting (or restarting)
                continue
            self._peers[owner] = peer
            return peer

    async def _send_frame(self, peer: socket.socket, client: socket.socket,
                          initial: bytes) -> None:
        frame = len(initial).to_bytes(_HEADER, "big") + initial
        loop = asyncio.get_running_loop()
        while True:
            try:
                sent = socket.send_fds(peer, [frame], [client.fileno()])
                break
            except (BlockingIOError, InterruptedError):
                writable = loop.create_future()
                loop.add_writer(peer.fileno(), writable.set_result, None)
                try:
                    await writable
                finally:
                    loop.remove_writer(peer.fileno())
        if sent < len(frame):
            await loop.sock_sendall(peer, frame[sent:])

    def _forget_peer(self, owner: int) -> None:
        peer = self._peers.pop(owner, None)
        if peer is not None:
            peer.close()

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._listener is not None:
            loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path(self.directory, self.index))
        for conn in list(self._inbound):
            loop.remove_reader(conn.fileno())
            conn.close()
        self._inbound.clear()
        for owner in list(self._peers):
            self._forget_peer(owner)

"""The default adapter: rooms in memory, indexed both ways, broadcasts encoded once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..codecs import socketio as sio
from ..engine.session import Prepared
from ..socketio.adapter import Adapter, BroadcastAcks, BroadcastOptions
from ..socketio.recovery import RecoveryOptions, Restored, Session
from ..socketio.socket import Socket
from .packet_log import PacketLog


class InMemoryAdapter(Adapter):
    """Everything in this process: ``rooms`` (room -> socket ids) and ``sids`` (socket id ->
    rooms), so that joining, leaving and disconnecting cost O(rooms of that socket)."""

    def __init__(self, nsp: Any) -> None:
        super().__init__(nsp)
        self.rooms: dict[str, set[str]] = {}
        self.sids: dict[str, set[str]] = {}
        #: events and sessions kept for connection state recovery (when the server offers it)
        self.log: PacketLog | None = None

    # -- rooms ----------------------------------------------------------------------------------

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        own = self.sids.get(sid)
        if own is None:
            own = self.sids[sid] = set()
        observer = self.nsp.observer
        for room in rooms:
            if room not in own:
                own.add(room)
                members = self.rooms.get(room)
                if members is None:
                    self.rooms[room] = {sid}
                    self.room_created(room)
                else:
                    members.add(sid)
                if observer is not None:
                    observer.room_joined(self.nsp, room, sid)

    def delete(self, sid: str, room: str) -> None:
        own = self.sids.get(sid)
        if own is not None:
            own.discard(room)
        members = self.rooms.get(room)
        if members is not None and sid in members:
            members.discard(sid)
            if not members:
                del self.rooms[room]
                self.room_deleted(room)
            observer = self.nsp.observer
            if observer is not None:
                observer.room_left(self.nsp, room, sid)

    def delete_all(self, sid: str) -> None:
        own = self.sids.pop(sid, None)
        if not own:
            return
        observer = self.nsp.observer
        for room in own:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self.rooms[room]
                    self.room_deleted(room)
                if observer is not None:
                    observer.room_left(self.nsp, room, sid)

    def room_created(self, room: str) -> None:
        """A room has its first socket (Node's ``create-room``): a hook for subclasses."""

    def room_deleted(self, room: str) -> None:
        """A room lost its last socket (Node's ``delete-room``): a hook for subclasses."""

    def socket_rooms(self, sid: str) -> set[str]:
        return set(self.sids.get(sid, ()))

    def local_rooms(self) -> dict[str, set[str]]:
        return self.rooms

    # -- selection ------------------------------------------------------------------------------

    def select(self, opts: BroadcastOptions) -> list[Socket]:
        """Local sockets targeted by ``opts`` (a snapshot: sending may disconnect some)."""
        sockets = self.nsp.sockets
        excluded: set[str] = set()
        for room in opts.except_rooms:
            excluded.update(self.rooms.get(room, ()))
        if not opts.rooms:
            if not excluded:
                return list(sockets.values())
            return [s for sid, s in sockets.items() if sid not in excluded]
        if len(opts.rooms) == 1:
            (room,) = opts.rooms
            ids: Iterable[str] = self.rooms.get(room, ())
        else:
            union: set[str] = set()
            for room in opts.rooms:
                union.update(self.rooms.get(room, ()))
            ids = union
        return [sockets[sid] for sid in ids if sid not in excluded and sid in sockets]

    # -- broadcast ------------------------------------------------------------------------------

    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> None:
        if self.log is not None and not opts.volatile:
            # logged even when nobody is targeted now: a socket in those rooms may come back
            self.broadcast_local(data, opts, self.log.append(data, opts))
        else:
            self.broadcast_local(data, opts)

    def broadcast_local(self, data: list[Any], opts: BroadcastOptions,
                        offset: str | None = None) -> None:
        """Send ``data`` to this server's sockets that ``opts`` selects, encoded once. With an
        ``offset`` (connection state recovery: the event's place in a log), protocol 5 clients
        get it as the last argument and protocol 4 clients, which cannot recover, the event as
        it was."""
        targets = self.select(opts)
        observer = self.nsp.observer  # told once per broadcast, not per socket
        if not targets:
            if observer is not None:
                observer.broadcast(0, None)
            return
        if observer is not None:
            observer.event_sent(self.nsp, targets, data)
        if offset is None:
            text, attachments = sio.encode(sio.EVENT, self.nsp.name, data)
            prepared = Prepared([text, *attachments])
            volatile = opts.volatile
            for socket in targets:
                socket.conn.engine.send_prepared(prepared, volatile)
            if observer is not None:
                observer.broadcast(len(targets), prepared)
            return
        encoded: dict[int, Prepared] = {}
        for socket in targets:
            protocol = socket.conn.socketio_protocol
            variant = encoded.get(protocol)
            if variant is None:
                text, attachments = sio.encode(sio.EVENT, self.nsp.name,
                                               [*data, offset] if protocol == 5 else data)
                variant = encoded[protocol] = Prepared([text, *attachments])
            socket.conn.engine.send_prepared(variant, False)
        if observer is not None:  # every variant has as many packets (the attachments)
            observer.broadcast(len(targets), next(iter(encoded.values())))

    def broadcast_with_ack(self, data: list[Any], opts: BroadcastOptions,
                           on_ack: BroadcastAcks) -> list[str]:
        # Ack ids are unique per namespace, so one id and one encoding serve every recipient.
        targets = self.select(opts)
        observer = self.nsp.observer
        if not targets:
            if observer is not None:
                observer.broadcast(0, None)
            return []
        if observer is not None:
            observer.event_sent(self.nsp, targets, data)
        ack_id = self.nsp.next_ack_id()
        text, attachments = sio.encode(sio.EVENT, self.nsp.name, data, ack_id)
        prepared = Prepared([text, *attachments])
        sent: list[str] = []
        for socket in targets:
            sid = socket.id
            socket.acks.add(ack_id, lambda *args, sid=sid: on_ack(sid, list(args)))
            if socket.conn.engine.send_prepared(prepared, opts.volatile):
                sent.append(sid)
            else:
                socket.acks.discard(ack_id)
        if observer is not None:
            observer.broadcast(len(sent), prepared)
        return sent

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        return list(self.select(opts))

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = tuple(rooms)
        for socket in self.select(opts):
            self.add_all(socket.id, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = tuple(rooms)
        for socket in self.select(opts):
            for room in rooms:
                self.delete(socket.id, room)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for socket in self.select(opts):
            socket.disconnect(close)

    async def server_side_emit(self, data: list[Any], ack: bool,
                               timeout: float | None) -> list[Any]:
        return []  # a single server: nobody else to tell

    # -- connection state recovery --------------------------------------------------------------

    def enable_recovery(self, options: RecoveryOptions) -> None:
        if self.log is None:
            self.log = PacketLog(options.max_disconnection_duration)

    def persist_session(self, session: Session) -> None:
        if self.log is not None:
            self.log.persist(session)

    async def restore_session(self, pid: str, offset: str) -> Restored | None:
        log = self.log
        if log is None:
            return None
        session = log.take(pid)
        if session is None:
            return None
        later = log.after(offset)
        if later is None:
            return None
        rooms = set(session.rooms)
        missed = [[*data, packet_offset] for data, opts, packet_offset in later
                  if (not opts.rooms or not rooms.isdisjoint(opts.rooms))
                  and rooms.isdisjoint(opts.except_rooms)]
        return Restored(session, missed)

    async def close(self) -> None:
        if self.log is not None:
            self.log.close()

"""Socket.IO server: namespaces, sockets, rooms, broadcasts, acknowledgements, middlewares."""

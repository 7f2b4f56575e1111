"""Engine.IO server: sessions, polling and WebSocket transports, upgrade, heartbeat."""

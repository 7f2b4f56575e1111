// A reference socket.io server (2.x or 4.x from npm) for the Python client's interop tests.
// Usage: node sio_server.js '<json config>'
// config: {version: 2|4, port, allowEIO3?: bool, connectionStateRecovery?: bool, cookie?: bool}
// Prints `listening` once the port is bound; runs until killed.
//
// Behaviour (the same as the Python fixture server in tests/test_client_interop.py):
//   on connection  emit "welcome" {id, auth, headers, query, recovered}
//                  (auth: v4 socket.handshake.auth, v2 socket.handshake.query)
//   "echo"         ack with every argument (binary kept)
//   "ask-me"       emit "question" ("what?", <binary>) with an ack; what the client acks comes
//                  back as an "answer" event
//   "cookies"      ack with the Cookie headers of every HTTP/WebSocket request of this
//                  Engine.IO session seen after its handshake (null when a request had none)
//   "drop-me"      close the Engine.IO connection (a recoverable disconnect for connection
//                  state recovery), then ~100 ms later io.emit("news", "while away")
//   "/admin"       middleware: refuses unless the token (v4: auth.token, v2: query.token) is
//                  "admin-token"; v4 refuses with Error("not authorized") and data
//                  {reason: "bad token"}, v2 with Error("not authorized"); connected admin
//                  sockets get "admin-welcome" {id, token} and "echo" acks as on "/"
"use strict";
const http = require("http");

const cfg = JSON.parse(process.argv[2]);
const httpServer = http.createServer();
let io;
if (cfg.version === 2) {
  io = require("srv2")(httpServer, { cookie: cfg.cookie ? "io" : false, serveClient: false });
} else {
  const { Server } = require("srv4");
  const opts = { allowEIO3: !!cfg.allowEIO3, serveClient: false };
  if (cfg.cookie) opts.cookie = { name: "io", path: "/", httpOnly: true, sameSite: "lax" };
  if (cfg.connectionStateRecovery) {
    opts.connectionStateRecovery = { maxDisconnectionDuration: 60000, skipMiddlewares: true };
  }
  io = new Server(httpServer, opts);
}

// Cookie headers per Engine.IO session (requests carrying ?sid=), observed next to engine.io
// (listeners added after io attached are called as well; they only look).
const cookies = new Map();
const record = (req) => {
  const url = new URL(req.url, "http://127.0.0.1");
  const sid = url.searchParams.get("sid");
  if (!url.pathname.startsWith("/socket.io") || !sid) return;
  if (!cookies.has(sid)) cookies.set(sid, []);
  cookies.get(sid).push(req.headers.cookie === undefined ? null : req.headers.cookie);
};
httpServer.on("request", record);
httpServer.on("upgrade", record);

const auth = (socket) => (cfg.version === 2 ? socket.handshake.query : socket.handshake.auth);

const common = (socket) => {
  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack(...args);
  });
};

io.on("connection", (socket) => {
  socket.emit("welcome", {
    id: socket.id,
    auth: auth(socket),
    headers: socket.handshake.headers,
    query: socket.handshake.query,
    recovered: !!socket.recovered,
  });
  common(socket);
  socket.on("ask-me", () => {
    socket.emit("question", "what?", Buffer.from([0, 1, 2, 255]), (...answer) => {
      socket.emit("answer", ...answer);
    });
  });
  socket.on("cookies", (ack) => ack(cookies.get(socket.conn.id) || []));
  socket.on("drop-me", () => {
    socket.conn.close();
    setTimeout(() => io.emit("news", "while away"), 100);
  });
});

const admin = io.of("/admin");
admin.use((socket, next) => {
  const token = auth(socket).token;
  if (token === "admin-token") return next();
  const err = new Error("not authorized");
  if (cfg.version !== 2) err.data = { reason: "bad token" };
  next(err);
});
admin.on("connection", (socket) => {
  socket.emit("admin-welcome", { id: socket.id, token: auth(socket).token });
  common(socket);
});

httpServer.listen(cfg.port, "127.0.0.1", () => console.log("listening"));

// A real socket.io 4.8 server using an official Redis adapter (classic, sharded or streams) on
// a real Redis, for the cross-server tests; driven by JSON commands on stdin (see jsonlines.js).
// Usage: node redis_node_server.js '<json config>'
// config: {port, redis: "redis://127.0.0.1:P", adapter: "classic"|"sharded"|"streams", key?,
//          requestsTimeout?, publishOnSpecificResponseChannel?, channelPrefix?,
//          subscriptionMode?, streamName?, maxLen?, readCount?, sessionKeyPrefix?,
//          recovery?: {maxDisconnectionDuration?, skipMiddlewares?} (connectionStateRecovery),
//          namespaces?: ["/", ...], serverSideEvents?: ["ping", "hello"],
//          admin?: {serverId, mode: "development"|"production", namespace?}}
// admin instruments the server with the official @socket.io/admin-ui 0.5 (auth false; its
// namespace, "/admin" by default, is subscribed like the others before ready).
// Prints {"ready":true} once listening and subscribed. Binary values are {"$bin": "<hex>"}.
// Commands ({id, op, ...}; nsp defaults to "/", to/except are lists of rooms):
//   emit {nsp?, to?, except?, event, args, volatile?, local?}
//   emit_with_ack {nsp?, to?, except?, event, args, timeout_ms}  {responses} or
//                                                    {error, responses}
//   fetch_sockets {nsp?, to?, except?}   [{id, rooms, data, handshake: {query, auth, address}}]
//   sockets_join {nsp?, to?, except?, rooms} | sockets_leave {...}
//   disconnect_sockets {nsp?, to?, except?, close?}
//   server_side_emit {nsp?, event, args, ack?, timeout_ms?}  with ack: {responses} or
//                                                    {error, responses}
//   all_rooms {nsp?} | server_count {nsp?}
//   socket_data {nsp?, sid, data} | socket_join {nsp?, sid, room}   a socket of this server
//               (sid, as "id" names the command)
//   socket_info {nsp?, sid}   {id, pid, rooms, data, recovered, engineId} of a socket of this
//               server (engineId: its Engine.IO connection's id)
//   close_transport {nsp?, sid}   close its Engine.IO connection ("forced close")
//   events {}   what this server observed since the last call, in order:
//               {type: "connection", nsp, id, auth, recovered},
//               {type: "event", nsp, id, event, args, ack},
//               {type: "server_side", nsp, event, args, ack}, {type: "disconnect", nsp, id, reason}
// Client events asking for an ack are answered {node: true, event}; server-side emits asking
// for one are answered {node: <pid>}.
"use strict";
const http = require("http");
const { Server } = require("srv4");
const { createAdapter, createShardedAdapter } = require("redis-adapter");
// the streams adapter is loaded only when asked for
const { createClient } = require("redis4");
const { revive, encode, write, serve } = require("./jsonlines");

const cfg = JSON.parse(process.argv[2]);
const observed = [];

function clientError(which) {
  // node-redis emits "error" on every lost connection; without a listener it would throw
  return (err) => process.stderr.write(`redis ${which} client: ${err.message}\n`);
}

function adapterFactory(pub, sub) {
  if (cfg.adapter === "streams") {
    const opts = {};
    for (const key of ["streamName", "maxLen", "readCount", "sessionKeyPrefix", "channelPrefix"]) {
      if (cfg[key] !== undefined) opts[key] = cfg[key];
    }
    return require("redis-streams-adapter").createAdapter(pub, opts);
  }
  if (cfg.adapter === "sharded") {
    const opts = {};
    if (cfg.channelPrefix) opts.channelPrefix = cfg.channelPrefix;
    if (cfg.subscriptionMode) opts.subscriptionMode = cfg.subscriptionMode;
    return createShardedAdapter(pub, sub, opts);
  }
  const opts = { publishOnSpecificResponseChannel: !!cfg.publishOnSpecificResponseChannel };
  if (cfg.key) opts.key = cfg.key;
  if (cfg.requestsTimeout) opts.requestsTimeout = cfg.requestsTimeout;
  return createAdapter(pub, sub, opts);
}

function watch(nsp) {
  const name = nsp.name;
  nsp.on("connection", (socket) => {
    observed.push({ type: "connection", nsp: name, id: socket.id,
      auth: encode(socket.handshake.auth), recovered: !!socket.recovered });
    socket.onAny((event, ...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      observed.push({ type: "event", nsp: name, id: socket.id, event, args: encode(args),
        ack: !!ack });
      if (ack) ack({ node: true, event });
    });
    socket.on("disconnect", (reason) => {
      observed.push({ type: "disconnect", nsp: name, id: socket.id, reason });
    });
  });
  for (const event of cfg.serverSideEvents || ["ping", "hello"]) {
    nsp.on(event, (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      observed.push({ type: "server_side", nsp: name, event, args: encode(args), ack: !!ack });
      if (ack) ack({ node: process.pid });
    });
  }
}

let started = false;

// node-redis's own reconnection (retries * 50 ms, at most 500 ms) once the server runs, as the
// adapters see it in production; before that, an unreachable Redis fails the start in ~2 s
// instead of being retried forever
function reconnectStrategy(retries, cause) {
  if (started) return Math.min(retries * 50, 500);
  return retries >= 20 ? new Error(`no Redis at ${cfg.redis}: ${cause && cause.message}`) : 100;
}

async function main() {
  // a name that the streams adapter's own connections (duplicates of this one) carry too
  const clientName = `sionode-${process.pid}`;
  const pub = createClient({ url: cfg.redis, name: clientName, socket: { reconnectStrategy } });
  const sub = pub.duplicate();
  pub.on("error", clientError("pub"));
  sub.on("error", clientError("sub"));
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer();
  const options = {
    allowEIO3: true,
    serveClient: false,
    cors: { origin: true, credentials: true },
    adapter: adapterFactory(pub, sub),
  };
  if (cfg.recovery) {
    options.connectionStateRecovery = Object.assign(
      { maxDisconnectionDuration: 120000, skipMiddlewares: true }, cfg.recovery);
  }
  const io = new Server(httpServer, options);
  for (const name of cfg.namespaces || ["/"]) watch(io.of(name));
  if (cfg.admin) {
    const opts = { auth: false, mode: cfg.admin.mode || "development",
      serverId: cfg.admin.serverId };
    if (cfg.admin.namespace) opts.namespaceName = cfg.admin.namespace;
    // creates the admin namespace (and its adapter): before the probe below, which then
    // confirms that namespace's subscriptions too
    require("admin-ui").instrument(io, opts);
  }

  // The adapters subscribe without waiting for Redis to confirm; one more subscription of the
  // same kind on the same connection is confirmed after theirs, so once it is, a message
  // published by another server cannot be missed.
  const probe = `sockjet-probe#${process.pid}`;
  if (cfg.adapter === "streams") {
    // its own subscriber confirmed the channels of every namespace (the private channel comes
    // in the same SUBSCRIBE as the public one) and its reader waits in XREAD BLOCK
    const prefix = cfg.channelPrefix || "socket.io";
    const ready = async () => {
      for (const name of io._nsps.keys()) {
        const channel = `${prefix}#${name}#${io.of(name).adapter.uid}#`;
        const reply = await pub.sendCommand(["PUBSUB", "NUMSUB", channel]);
        if (Number(reply[1]) !== 1) return false;
      }
      const clients = String(await pub.sendCommand(["CLIENT", "LIST"])).split("\n");
      return clients.some((line) => line.includes(`name=${clientName} `) &&
        line.includes(" cmd=xread"));
    };
    const deadline = Date.now() + 10000;
    while (!(await ready())) {
      if (Date.now() > deadline) throw new Error("the streams adapter did not start in 10 s");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } else if (cfg.adapter === "sharded") {
    await sub.sSubscribe(probe, () => {});
    await sub.sUnsubscribe(probe);
  } else {
    await sub.subscribe(probe, () => {});
    await sub.unsubscribe(probe);
  }

  const target = (cmd) => {
    let op = io.of(cmd.nsp || "/");
    if (cmd.to && cmd.to.length) op = op.to(cmd.to);
    if (cmd.except && cmd.except.length) op = op.except(cmd.except);
    return op;
  };
  const local = (cmd) => {
    const socket = io.of(cmd.nsp || "/").sockets.get(cmd.sid);
    if (!socket) throw new Error(`no local socket ${cmd.sid} in ${cmd.nsp || "/"}`);
    return socket;
  };

  const handlers = {
    emit(cmd) {
      let op = target(cmd);
      if (cmd.volatile) op = op.volatile;
      if (cmd.local) op = op.local;
      op.emit(cmd.event, ...revive(cmd.args || []));
      return null;
    },
    emit_with_ack(cmd) {
      return new Promise((resolve) => {
        target(cmd).timeout(cmd.timeout_ms || 5000).emit(cmd.event, ...revive(cmd.args || []),
          (err, responses) => resolve(err ? { error: err.message, responses: responses || null }
            : { responses }));
      });
    },
    async fetch_sockets(cmd) {
      const sockets = await target(cmd).fetchSockets();
      return sockets.map((s) => ({
        id: s.id,
        rooms: [...s.rooms],
        data: s.data,
        handshake: { query: s.handshake.query, auth: s.handshake.auth,
          address: s.handshake.address },
      }));
    },
    sockets_join(cmd) {
      target(cmd).socketsJoin(cmd.rooms);
      return null;
    },
    sockets_leave(cmd) {
      target(cmd).socketsLeave(cmd.rooms);
      return null;
    },
    disconnect_sockets(cmd) {
      target(cmd).disconnectSockets(!!cmd.close);
      return null;
    },
    server_side_emit(cmd) {
      const nsp = io.of(cmd.nsp || "/");
      const args = revive(cmd.args || []);
      if (!cmd.ack) {
        nsp.serverSideEmit(cmd.event, ...args);
        return null;
      }
      // socket.io 4.8 has no timeout() for serverSideEmit: the adapter's own request timeout
      // applies (classic: requestsTimeout, sharded: 5 s); timeout_ms only bounds the wait here
      const ms = cmd.timeout_ms || 10000;
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ error: `no answer within ${ms} ms`,
          responses: null }), ms);
        nsp.serverSideEmit(cmd.event, ...args, (err, responses) => {
          clearTimeout(timer);
          resolve(err ? { error: err.message, responses: responses || null } : { responses });
        });
      });
    },
    async all_rooms(cmd) {
      return [...(await io.of(cmd.nsp || "/").adapter.allRooms())];
    },
    server_count(cmd) {
      return io.of(cmd.nsp || "/").adapter.serverCount();
    },
    events() {
      return observed.splice(0);
    },
    socket_data(cmd) {
      local(cmd).data = revive(cmd.data);
      return null;
    },
    socket_join(cmd) {
      return Promise.resolve(local(cmd).join(cmd.room)).then(() => null);
    },
    socket_info(cmd) {
      const s = local(cmd);
      return { id: s.id, pid: s.pid || null, rooms: [...s.rooms], data: s.data,
        recovered: !!s.recovered, engineId: s.conn.id };
    },
    close_transport(cmd) {
      local(cmd).conn.close();
      return null;
    },
  };

  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(cfg.port, "127.0.0.1", resolve);
  });
  started = true;
  serve(handlers, async () => {
    io.close();
    await Promise.allSettled([pub.disconnect(), sub.disconnect()]);
  });
  write({ ready: true });
}

main().catch((err) => {
  process.stderr.write(`redis_node_server: ${err.stack || err}\n`);
  process.exit(1);
});

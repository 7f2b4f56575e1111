// Runs a list of operations with the official Redis emitter (@socket.io/redis-emitter) on a
// node-redis 4 client, then prints {"done":true} and exits.
// Usage: node redis_emitter.js '<json config>'
// config: {redis: "redis://127.0.0.1:P", key?: "socket.io", ops: [...]}; each op:
//   {nsp?, to?, except?, event, args, volatile?}          a broadcast (the default op)
//   {op: "sockets_join"|"sockets_leave", nsp?, to?, except?, rooms}
//   {op: "disconnect_sockets", nsp?, to?, except?, close?}
//   {op: "server_side_emit", nsp?, event, args}
// Binary values are {"$bin": "<hex>"}.
"use strict";
const { Emitter } = require("redis-emitter");
const { createClient } = require("redis4");
const { revive, write } = require("./jsonlines");

const cfg = JSON.parse(process.argv[2]);

async function main() {
  // an unreachable Redis fails the run in ~2 s instead of being retried forever
  const reconnectStrategy = (retries, cause) =>
    retries >= 20 ? new Error(`no Redis at ${cfg.redis}: ${cause && cause.message}`) : 100;
  const client = createClient({ url: cfg.redis, socket: { reconnectStrategy } });
  client.on("error", (err) => process.stderr.write(`redis client: ${err.message}\n`));
  await client.connect();
  const emitter = new Emitter(client, { key: cfg.key || "socket.io" });
  for (const op of cfg.ops) {
    const nsp = emitter.of(op.nsp || "/");
    let target = nsp;
    if (op.to && op.to.length) target = target.to(op.to);
    if (op.except && op.except.length) target = target.except(op.except);
    switch (op.op || "emit") {
      case "emit":
        if (op.volatile) target = target.volatile;
        target.emit(op.event, ...revive(op.args || []));
        break;
      case "sockets_join":
        target.socketsJoin(op.rooms);
        break;
      case "sockets_leave":
        target.socketsLeave(op.rooms);
        break;
      case "disconnect_sockets":
        target.disconnectSockets(!!op.close);
        break;
      case "server_side_emit":
        nsp.serverSideEmit(op.event, ...revive(op.args || []));
        break;
      default:
        throw new Error("unknown op " + op.op);
    }
  }
  // The emitter does not wait for its PUBLISHes; QUIT is answered after them (one connection,
  // replies in order), so every operation has reached Redis once quit() resolves.
  await client.quit();
  write({ done: true });
}

main().catch((err) => {
  process.stderr.write(`redis_emitter: ${err.stack || err}\n`);
  process.exit(1);
});

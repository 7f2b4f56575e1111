// The benchmark app on the official Redis adapter, the way the Socket.IO docs scale Node over
// several servers: @socket.io/redis-adapter 8.3 (classic, createAdapter) with node-redis 4
// clients (one to publish, one to subscribe). Several of these on one Redis make one
// deployment; bench/run.py starts two.
// Usage: node redis_server.js PORT REDIS_URL
"use strict";
const { createServer } = require("http");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");
const { createApp } = require("./app");

const port = Number(process.argv[2]);
const url = process.argv[3];

async function main() {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  // node-redis emits "error" on a lost connection; without a listener the process would throw
  for (const [name, client] of [["pub", pub], ["sub", sub]]) {
    client.on("error", (err) => process.stderr.write(`redis ${name} client: ${err.message}\n`));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = createServer();
  createApp(httpServer, { adapter: createAdapter(pub, sub) });
  // The adapter subscribes without waiting for Redis to confirm; the runner waits until Redis
  // counts every server's subscriptions before it starts the load (PUBSUB NUMSUB / NUMPAT).
  httpServer.listen(port, "127.0.0.1", () => console.log("listening"));
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack || err}\n`);
  process.exit(1);
});

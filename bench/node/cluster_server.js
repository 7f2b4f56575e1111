// The benchmark app on a Node cluster, the way the Socket.IO docs scale Node over cores: a
// primary process routes each Engine.IO session to one worker (@socket.io/sticky) and relays
// broadcasts between the workers (@socket.io/cluster-adapter).
// Usage: node cluster_server.js PORT WORKERS
"use strict";
const cluster = require("cluster");
const { createServer } = require("http");
const { setupMaster, setupWorker } = require("@socket.io/sticky");
const { createAdapter, setupPrimary } = require("@socket.io/cluster-adapter");
const { createApp } = require("./app");

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] || 2);

if (cluster.isPrimary) {
  const httpServer = createServer();
  setupMaster(httpServer, { loadBalancingMethod: "least-connection" });
  setupPrimary();
  let started = 0;
  cluster.on("online", () => {
    started += 1;
    if (started === workers) {
      httpServer.listen(port, "127.0.0.1", () => console.log("listening"));
    }
  });
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const io = createApp(createServer());
  io.adapter(createAdapter());
  setupWorker(io);
}

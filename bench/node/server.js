// Node socket.io 4 server for the benchmarks: the same app as bench/servers/*.py.
// Usage: node server.js PORT
"use strict";
const { createServer } = require("http");
const { createApp } = require("./app");

const port = Number(process.argv[2]);
const httpServer = createServer();
createApp(httpServer);
httpServer.listen(port, "127.0.0.1", () => console.log("listening"));

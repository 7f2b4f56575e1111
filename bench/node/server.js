// Node socket.io 4 server for the benchmarks: the same app as bench/servers/*.py.
// Usage: node server.js PORT
"use strict";
const { createServer } = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const httpServer = createServer();
const io = new Server(httpServer, { allowEIO3: true, cors: { origin: true, credentials: true },
  maxHttpBufferSize: 1e6 });

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = args.pop();
    ack(...args);
  });
});

// The control namespace drives broadcasts to everyone on "/".
io.of("/control").on("connection", (socket) => {
  socket.on("broadcast", (opts, ack) => {
    const payload = opts.binary ? Buffer.alloc(opts.size, 7) : "x".repeat(opts.size);
    const started = Date.now();
    let seq = 0;
    // rate = broadcasts per second (0: as fast as possible, 50 per event-loop turn)
    const interval = opts.rate ? Math.max(10, 1000 / opts.rate) : 0;
    const batch = opts.rate ? Math.max(1, Math.round((opts.rate * interval) / 1000)) : 50;
    const step = () => {
      for (let i = 0; i < batch && seq < opts.count; i++, seq++) {
        io.emit("tick", seq, performance.timeOrigin + performance.now(), payload);
      }
      if (seq < opts.count) {
        if (opts.rate) setTimeout(step, started + (seq / batch) * interval - Date.now());
        else setImmediate(step);
      } else {
        ack({ elapsed: Date.now() - started });
      }
    };
    step();
  });
  socket.on("count", (ack) => ack(io.of("/").sockets.size));
});

httpServer.listen(port, "127.0.0.1", () => console.log("listening"));

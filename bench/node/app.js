// The benchmark app (the same as bench/servers/*.py), for one server process: server.js runs
// it alone, cluster_server.js in each worker of a Node cluster, redis_server.js on a Redis
// adapter (`extra`: more Server options, such as the adapter).
"use strict";
const { Server } = require("socket.io");

const OPTIONS = { allowEIO3: true, cors: { origin: true, credentials: true },
  maxHttpBufferSize: 1e6 };

function createApp(httpServer, extra = {}) {
  const io = new Server(httpServer, { ...OPTIONS, ...extra });
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
  return io;
}

module.exports = { createApp };

// Drives a real engine.io-client (3.x or 6.x from npm) against a server and reports, as JSON on
// stdout, the transport it ended on and every message it received back.
// Usage: node eio_client.js '<json config>'
//   config: {version: 3|6, url, path, transports?, upgrade?, forceBase64?,
//            messages: [{text: "..."} | {hex: "0102"}], expectUpgrade?: bool}
"use strict";
const cfg = JSON.parse(process.argv[2]);
const Socket = cfg.version === 3 ? require("eio3") : require("eio6").Socket;

const opts = { path: cfg.path };
if (cfg.transports) opts.transports = cfg.transports;
if (cfg.upgrade !== undefined) opts.upgrade = cfg.upgrade;
if (cfg.forceBase64) opts.forceBase64 = true;
const socket = new Socket(cfg.url, opts);
if (cfg.version === 3) socket.binaryType = "arraybuffer";

const received = [];
let upgraded = false;
let finished = false;

function finish(error) {
  if (finished) return;
  finished = true;
  const out = { transport: socket.transport ? socket.transport.name : null, received, upgraded };
  if (error) out.error = String(error);
  process.stdout.write(JSON.stringify(out) + "\n");
  socket.close();
  setTimeout(() => process.exit(error ? 1 : 0), 50);
}

function maybeDone() {
  if (received.length >= cfg.messages.length && (!cfg.expectUpgrade || upgraded)) finish();
}

socket.on("open", () => {
  for (const m of cfg.messages) {
    if (m.hex !== undefined) {
      const buf = Buffer.from(m.hex, "hex");
      // v3 in Node sends Buffers; v6 accepts Buffer or ArrayBuffer
      socket.send(buf);
    } else {
      socket.send(m.text);
    }
  }
});
socket.on("message", (data) => {
  // engine.io-parser 2 (v3) delivers an empty message as undefined
  if (data === undefined) received.push({ text: "" });
  else if (typeof data === "string") received.push({ text: data });
  else received.push({ hex: Buffer.from(data).toString("hex") });
  maybeDone();
});
socket.on("upgrade", () => {
  upgraded = true;
  maybeDone();
});
socket.on("error", (err) => finish(err && err.message ? err.message : err));
socket.on("close", (reason) => finish("closed early: " + reason));
setTimeout(() => finish("timeout"), cfg.timeout || 10000);

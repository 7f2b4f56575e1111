// Runs a scripted scenario with the real socket.io-client (2.x or 4.x from npm) and prints, as
// JSON on stdout, what each step observed.
// Usage: node sio_client.js '<json plan>'
// plan: {version: 2|4, url, timeout?, steps: [...]}; binary values are {"$bin": "<hex>"}.
// steps:
//   {op: "connect", name, nsp?, opts?, listen?: [events], multiplex?: bool}
//   {op: "wait", name, event}            wait for the next `event` on socket `name`; result = args
//   {op: "emit", name, event, args?, ack?: bool, timeout?: ms}  result = ack args (or error)
//   {op: "reply", name, event, reply}    answer server acks for `event` with `reply` args
//   {op: "sleep", ms} | {op: "disconnect", name} | {op: "state", name}
"use strict";
const plan = JSON.parse(process.argv[2]);
const io = plan.version === 2 ? require("sio2") : require("sio4").io;

const revive = (v) => {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string") return Buffer.from(v.$bin, "hex");
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]));
  }
  return v;
};
const encode = (v) => {
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("hex") };
  if (Buffer.isBuffer(v) || ArrayBuffer.isView(v)) {
    return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex") };
  }
  if (v instanceof Error) return { $error: v.message, data: encode(v.data) };
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  }
  return v === undefined ? null : v;
};

const sockets = {};
const queues = {};   // name -> event -> [args]
const waiters = {};  // name -> event -> resolve
const results = [];

function push(name, event, args) {
  const w = waiters[name] && waiters[name][event];
  if (w) { delete waiters[name][event]; w(args); return; }
  ((queues[name] ||= {})[event] ||= []).push(args);
}
function next(name, event, ms) {
  const q = queues[name] && queues[name][event];
  if (q && q.length) return Promise.resolve(q.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), ms);
    (waiters[name] ||= {})[event] = (a) => { clearTimeout(t); resolve(a); };
  });
}

const BUILTIN = ["connect", "connect_error", "disconnect", "error", "connect_timeout"];

async function run() {
  const ms = plan.timeout || 5000;
  for (const step of plan.steps) {
    const s = sockets[step.name];
    let result = null;
    try {
      switch (step.op) {
        case "connect": {
          const opts = Object.assign({ forceNew: !step.multiplex, reconnection: false },
            revive(step.opts || {}));
          const sock = io(plan.url + (step.nsp || ""), opts);
          sockets[step.name] = sock;
          for (const ev of BUILTIN.concat(step.listen || [])) {
            sock.on(ev, (...args) => push(step.name, ev, encode(args)));
          }
          break;
        }
        case "wait":
          result = await next(step.name, step.event, step.timeout || ms);
          break;
        case "emit": {
          const args = revive(step.args || []);
          if (step.ack) {
            result = await new Promise((resolve) => {
              const t = setTimeout(() => resolve({ $timeout: true }), step.timeout || ms);
              s.emit(step.event, ...args, (...reply) => { clearTimeout(t); resolve(encode(reply)); });
            });
          } else {
            s.emit(step.event, ...args);
          }
          break;
        }
        case "reply":
          s.on(step.event, (...args) => {
            const cb = args.pop();
            push(step.name, step.event, encode(args));
            cb(...revive(step.reply || []));
          });
          break;
        case "sleep":
          await new Promise((r) => setTimeout(r, step.ms));
          break;
        case "disconnect":
          s.disconnect();
          break;
        case "state": {
          const transport = s.io && s.io.engine && s.io.engine.transport;
          result = { id: s.id, connected: s.connected, transport: transport && transport.name };
          break;
        }
        default:
          throw new Error("unknown op " + step.op);
      }
    } catch (err) {
      result = { $error: String(err.message || err) };
    }
    results.push(result);
  }
}

const deadline = setTimeout(() => {
  process.stdout.write(JSON.stringify({ results, error: "scenario timeout" }) + "\n");
  process.exit(1);
}, plan.deadline || 30000);

run().then(() => {
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify({ results }) + "\n");
  for (const s of Object.values(sockets)) s.close();
  setTimeout(() => process.exit(0), 50);
});

// Runs a scripted scenario with the real socket.io-client (2.x or 4.x from npm) and prints, as
// JSON on stdout, what each step observed.
// Usage: node sio_client.js '<json plan>'
// plan: {version: 2|4, url, timeout?, steps: [...]}; binary values are {"$bin": "<hex>"}.
// steps:
//   {op: "connect", name, nsp?, opts?, listen?: [events], multiplex?: bool}
//   {op: "wait", name, event}            wait for the next `event` on socket `name`; result = args
//   {op: "emit", name, event, args?, ack?: bool, timeout?: ms}  result = ack args (or error)
//   {op: "reply", name, event, reply}    answer server acks for `event` with `reply` args
//   {op: "sleep", ms} | {op: "disconnect", name}
//   {op: "until_file", path}             wait until the test creates `path` (its go-ahead,
//                                        given once the server has seen what it waits for)
//   {op: "state", name}                  result = {id, connected, transport, engineId}
//   {op: "drain", name, event}           result = every `event` received so far and not yet
//                                        waited for (list of args lists); the queue is emptied
//   {op: "close_transport", name}        close the socket's Engine.IO connection directly
//                                        (s.io.engine.close(): no Socket.IO DISCONNECT packet)
//   {op: "freeze", ms}                   block the event loop (no heartbeat, no I/O) for ms
//   {op: "exit"}                         print the results so far and exit at once, leaving
//                                        every connection to be torn down by the OS
// Each connect listens to connect, connect_error, disconnect, error, connect_timeout and the
// `listen` events; their args are queued per socket and event for wait/drain.
"use strict";
const fs = require("fs");
const plan = JSON.parse(process.argv[2]);
const io = plan.version === 2 ? require("sio2") : require("sio4").io;

const { revive, encode } = require("./jsonlines");

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
        case "until_file":
          while (!fs.existsSync(step.path)) await new Promise((r) => setTimeout(r, 10));
          break;
        case "disconnect":
          s.disconnect();
          break;
        case "state": {
          const engine = s.io && s.io.engine;
          const transport = engine && engine.transport;
          result = { id: s.id, connected: s.connected, transport: transport && transport.name,
            engineId: (engine && engine.id) || null };
          break;
        }
        case "drain": {
          const q = queues[step.name] && queues[step.name][step.event];
          result = q ? q.splice(0) : [];
          break;
        }
        case "close_transport":
          s.io.engine.close();
          break;
        case "freeze":
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, step.ms);
          break;
        case "exit":
          results.push(null);
          return true;
        default:
          throw new Error("unknown op " + step.op);
      }
    } catch (err) {
      result = { $error: String(err.message || err) };
    }
    results.push(result);
  }
}

// One JSON line; U+2028/U+2029 escaped so that line splitters (Python's splitlines) keep it whole.
const line = (value) =>
  JSON.stringify(value).replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029") + "\n";

const deadline = setTimeout(() => {
  process.stdout.write(line({ results, error: "scenario timeout" }));
  process.exit(1);
}, plan.deadline || 30000);

run().then((exitNow) => {
  clearTimeout(deadline);
  if (exitNow) {
    process.stdout.write(line({ results }), () => process.exit(0));
    return;
  }
  process.stdout.write(line({ results }));
  for (const s of Object.values(sockets)) s.close();
  setTimeout(() => process.exit(0), 50);
});

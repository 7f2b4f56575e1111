// Long-lived real socket.io-client sockets (2.x or 4.x from npm), driven by JSON commands on
// stdin, one per line, each answered by one JSON line on stdout (see jsonlines.js).
// Usage: node sio_repl.js
// Binary values are {"$bin": "<hex>"} both ways.
// Commands ({id, op, ...}):
//   connect {name, version: 2|4, url, nsp?, transport?: "polling"|"websocket"|null, opts?,
//            timeout_ms?}                       result {sid} once connected (error on refusal)
//   wait {name, event, timeout_ms?}              args of the next `event` (default 5000 ms)
//   drain {name, event}                          every queued `event` (list of args lists)
//   emit {name, event, args?, ack?, timeout_ms?} with ack: the ack's args
//   reply {name, event, args}                    answer `event`s asking for an ack with args
//   state {name}                                 {id, connected, transport}
//   close_transport {name}                       close the socket's Engine.IO connection as a
//                                                lost network would (no DISCONNECT packet); with
//                                                opts.reconnection the client comes back
//   disconnect {name} | close_all
// Every event a socket receives is queued per (socket, event) with its args, and so are its
// connect, connect_error, disconnect (args [reason]) and, for 2.x, error events. Events asking
// for an ack get the registered reply, or none.
"use strict";
const { revive, encode, serve } = require("./jsonlines");

const sockets = {};
const queues = {};   // name -> event -> [args]
const waiters = {};  // name -> event -> [resolve]
const replies = {};  // name -> event -> args

function push(name, event, args) {
  const w = waiters[name] && waiters[name][event];
  if (w && w.length) {
    w.shift()(args);
    return;
  }
  ((queues[name] ||= {})[event] ||= []).push(args);
}

function next(name, event, ms) {
  const q = queues[name] && queues[name][event];
  if (q && q.length) return Promise.resolve(q.shift());
  return new Promise((resolve, reject) => {
    const list = ((waiters[name] ||= {})[event] ||= []);
    const waiter = (args) => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      list.splice(list.indexOf(waiter), 1);
      reject(new Error(`${name}: no ${event} within ${ms} ms`));
    }, ms);
    list.push(waiter);
  });
}

// An incoming event (any name): queued; answered when it asks for an ack and a reply is set.
function received(name, event, args) {
  const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
  push(name, event, encode(args));
  const reply = replies[name] && replies[name][event];
  if (ack && reply) ack(...revive(reply));
}

function get(name) {
  const s = sockets[name];
  if (!s) throw new Error("no socket named " + name);
  return s;
}

function forget(name) {
  if (sockets[name]) sockets[name].close();
  delete sockets[name];
  delete queues[name];
  delete waiters[name];
  delete replies[name];
}

const handlers = {
  connect(cmd) {
    const { name } = cmd;
    forget(name);
    const opts = Object.assign({ forceNew: true, reconnection: false }, revive(cmd.opts || {}));
    if (cmd.transport) opts.transports = [cmd.transport];
    const url = cmd.url + (cmd.nsp && cmd.nsp !== "/" ? cmd.nsp : "");
    let sock;
    if (cmd.version === 2) {
      sock = require("sio2")(url, opts);
      // 2.x has no onAny: every EVENT/BINARY_EVENT packet goes through onevent
      sock.onevent = function (packet) {
        const args = (packet.data || []).slice();
        const event = args.shift();
        if (packet.id != null) args.push(this.ack(packet.id));
        received(name, event, args);
      };
    } else {
      sock = require("sio4").io(url, opts);
      sock.onAny((event, ...args) => received(name, event, args));
    }
    sockets[name] = sock;
    const lifecycle = ["connect", "connect_error", "disconnect"];
    if (cmd.version === 2) lifecycle.push("error", "connect_timeout");
    for (const ev of lifecycle) sock.on(ev, (...args) => push(name, ev, encode(args)));
    return new Promise((resolve, reject) => {
      const fail = (err) => {
        clearTimeout(timer);
        reject(new Error("connect_error: " + ((err && err.message) || err)));
      };
      const timer = setTimeout(() => fail(new Error("no connect within timeout")),
        cmd.timeout_ms || 5000);
      sock.once("connect", () => {
        clearTimeout(timer);
        sock.off("connect_error", fail);
        if (cmd.version === 2) sock.off("error", fail);
        resolve({ sid: sock.id });
      });
      sock.once("connect_error", fail);
      // 2.x reports a refusal by a namespace middleware as "error"
      if (cmd.version === 2) sock.once("error", fail);
    });
  },

  wait(cmd) {
    get(cmd.name);
    return next(cmd.name, cmd.event, cmd.timeout_ms || 5000);
  },

  drain(cmd) {
    const q = queues[cmd.name] && queues[cmd.name][cmd.event];
    return q ? q.splice(0) : [];
  },

  emit(cmd) {
    const s = get(cmd.name);
    const args = revive(cmd.args || []);
    if (!cmd.ack) {
      s.emit(cmd.event, ...args);
      return null;
    }
    const ms = cmd.timeout_ms || 5000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ack for ${cmd.event} within ${ms} ms`)),
        ms);
      s.emit(cmd.event, ...args, (...reply) => {
        clearTimeout(timer);
        resolve(encode(reply));
      });
    });
  },

  reply(cmd) {
    get(cmd.name);
    (replies[cmd.name] ||= {})[cmd.event] = cmd.args || [];
    return null;
  },

  state(cmd) {
    const s = get(cmd.name);
    const engine = s.io && s.io.engine;
    const transport = engine && engine.transport;
    return { id: s.id === undefined ? null : s.id, connected: s.connected,
      transport: (transport && transport.name) || null };
  },

  close_transport(cmd) {
    const s = get(cmd.name);
    s.io.engine.close();
    return null;
  },

  disconnect(cmd) {
    get(cmd.name).disconnect();
    return null;
  },

  close_all() {
    for (const name of Object.keys(sockets)) forget(name);
    return null;
  },
};

serve(handlers, () => handlers.close_all());

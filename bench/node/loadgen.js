// Load generator for bench/run.py. Speaks Engine.IO 4 / Socket.IO 5 directly over `ws` and raw
// HTTP keep-alive (a full socket.io-client per connection would saturate this core first), and
// uses the real socket.io-client 2.x/4.x for the mixed-client scenario.
// Protocol with the runner: prints {"event":"ready"} once set up, waits for "go" on stdin,
// prints {"event":"done", ...results}, then waits for "quit" (connections stay open meanwhile).
// Config (JSON, first argument): {scenario, url, ...}; the fanout scenario also takes
// `urls` (several servers): client i connects to urls[i % urls.length] and the broadcasts are
// asked of the first server only.
"use strict";
const http = require("http");
const readline = require("readline");
const WebSocket = require("ws");

const cfg = JSON.parse(process.argv[2]);
const urls = cfg.urls || [cfg.url]; // http://127.0.0.1:PORT, one per server
const base = urls[0];
const now = () => performance.timeOrigin + performance.now();
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

function percentile(values, p) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// -- a raw WebSocket Socket.IO v5 client --------------------------------------------------------
function wsClient(nsp, handlers, url = base) {
  return new Promise((resolve, reject) => {
    const wsUrl = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
    const prefix = nsp === "/" ? "" : nsp + ",";
    const client = { ws, acks: new Map(), nextId: 0 };
    client.emit = (event, args, onAck) => {
      let id = "";
      if (onAck) { id = String(client.nextId++); client.acks.set(id, onAck); }
      ws.send("42" + prefix + id + JSON.stringify([event, ...args]));
    };
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const s = data.toString();
      if (s === "2") { ws.send("3"); return; }
      if (s[0] === "0") { ws.send("40" + prefix); return; }
      if (s[0] !== "4") return;
      let p = s.slice(1);
      const type = p[0];
      p = p.slice(1);
      if (prefix && p.startsWith(prefix)) p = p.slice(prefix.length);
      if (type === "0") { resolve(client); return; }
      if (type === "2") { handlers.event && handlers.event(JSON.parse(p)); return; }
      if (type === "3") {
        const m = /^(\d+)/.exec(p);
        const cb = client.acks.get(m[1]);
        client.acks.delete(m[1]);
        if (cb) cb(JSON.parse(p.slice(m[1].length)));
        return;
      }
      if (type === "4") reject(new Error("connect_error " + p));
    });
    ws.on("error", reject);
  });
}

async function connectMany(n, concurrency, make) {
  const clients = new Array(n);
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      clients[i] = await make(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return clients;
}

// -- a raw HTTP long-polling Socket.IO v5 client (keep-alive) -----------------------------------
function pollingClient(agent) {
  const request = (method, path, body) => new Promise((resolve, reject) => {
    const req = http.request(base + path, { method, agent,
      headers: body ? { "content-type": "text/plain;charset=UTF-8" } : {} }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks).toString()));
    });
    req.on("error", reject);
    req.end(body);
  });
  const client = { acks: new Map(), nextId: 0, closed: false };
  client.start = async () => {
    const open = await request("GET", "/socket.io/?EIO=4&transport=polling");
    client.sid = JSON.parse(open.slice(1)).sid;
    client.path = `/socket.io/?EIO=4&transport=polling&sid=${client.sid}`;
    await request("POST", client.path, "40");
    const connected = new Promise((r) => { client.onConnect = r; });
    client.loop();
    await connected;
  };
  client.loop = async () => {
    while (!client.closed) {
      const body = await request("GET", client.path);
      for (const pkt of body.split("\x1e")) {
        if (pkt === "2") request("POST", client.path, "3");
        else if (pkt.startsWith("40")) client.onConnect();
        else if (pkt.startsWith("43")) {
          const m = /^43(\d+)/.exec(pkt);
          const cb = client.acks.get(m[1]);
          client.acks.delete(m[1]);
          if (cb) cb(JSON.parse(pkt.slice(2 + m[1].length)));
        }
      }
    }
  };
  client.emit = (event, args, onAck) => {
    const id = String(client.nextId++);
    client.acks.set(id, onAck);
    return request("POST", client.path, "42" + id + JSON.stringify([event, ...args]));
  };
  return client;
}

// -- scenarios ----------------------------------------------------------------------------------
const scenarios = {
  async storm() {
    await ready();
    const t0 = now();
    const clients = await connectMany(cfg.clients, cfg.concurrency || 100, () => wsClient("/", {}));
    const elapsed = now() - t0;
    out({ event: "done", connected: clients.length, elapsed_ms: elapsed,
      per_second: clients.length / (elapsed / 1000) });
  },

  async echo() {
    const polling = cfg.transport === "polling";
    const agent = polling ? new http.Agent({ keepAlive: true, maxSockets: cfg.clients * 2 }) : null;
    const clients = await connectMany(cfg.clients, 50, async () => {
      if (!polling) return wsClient("/", {});
      const c = pollingClient(agent);
      await c.start();
      return c;
    });
    await ready();
    const latencies = [];
    let acks = 0;
    const deadline = now() + cfg.duration * 1000;
    const payload = "x".repeat(cfg.size || 32);
    await Promise.all(clients.map((c) => new Promise((resolve) => {
      const once = () => {
        if (now() > deadline) { resolve(); return; }
        const t = now();
        c.emit("echo", [payload, 1], () => { acks++; latencies.push(now() - t); once(); });
      };
      once();
    })));
    out({ event: "done", acks, elapsed_ms: cfg.duration * 1000,
      per_second: acks / cfg.duration, p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99) });
    for (const c of clients) c.closed = true;
  },

  async fanout() {
    let received = 0;
    const perServer = urls.map(() => 0); // deliveries to the clients of each server
    const latencies = [];
    const expected = cfg.clients * cfg.count;
    let finish;
    const finished = new Promise((r) => { finish = r; });
    let last = 0;
    const sampled = Math.min(cfg.clients, 200);
    await connectMany(cfg.clients, 100, (i) => wsClient("/", { event: (data) => {
      received++;
      perServer[i % urls.length]++;
      const t = now();
      last = t;
      if (i < sampled) latencies.push(t - data[2]);
      if (received === expected) finish();
    } }, urls[i % urls.length]));
    const control = await wsClient("/control", {}, urls[0]);
    await ready();
    const t0 = now();
    const timer = setTimeout(finish, (cfg.timeout || 120) * 1000);
    await new Promise((r) => control.emit("broadcast",
      [{ count: cfg.count, rate: cfg.rate || 0, size: cfg.size || 16, binary: false }], r));
    await finished;
    clearTimeout(timer);
    const elapsed = last - t0;
    out({ event: "done", delivered: received, expected, elapsed_ms: elapsed,
      per_second: received / (elapsed / 1000), p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99), delivered_per_server: perServer });
  },

  async mixed() {
    // real socket.io-client 2.x and 4.x, polling and WebSocket, binary broadcast
    const kinds = cfg.kinds; // e.g. [["sio4","websocket"],["sio2","polling"],...]
    const expected = cfg.clients * cfg.count;
    let received = 0;
    let last = 0;
    let finish;
    const finished = new Promise((r) => { finish = r; });
    const latencies = [];
    const sockets = await connectMany(cfg.clients, 20, (i) => new Promise((resolve, reject) => {
      const [lib, transport] = kinds[i % kinds.length];
      const io = lib === "sio2" ? require("sio2") : require("sio4").io;
      const s = io(base, { transports: [transport], forceNew: true, reconnection: false });
      s.on("tick", (seq, ts) => {
        received++;
        last = now();
        latencies.push(last - ts);
        if (received === expected) finish();
      });
      s.on("connect", () => resolve(s));
      s.on("connect_error", reject);
      s.on("error", reject);
    }));
    const control = await wsClient("/control", {});
    await ready();
    const t0 = now();
    const timer = setTimeout(finish, (cfg.timeout || 120) * 1000);
    await new Promise((r) => control.emit("broadcast",
      [{ count: cfg.count, rate: cfg.rate || 0, size: cfg.size || 64, binary: true }], r));
    await finished;
    clearTimeout(timer);
    const elapsed = last - t0;
    out({ event: "done", delivered: received, expected, elapsed_ms: elapsed,
      per_second: received / (elapsed / 1000), p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99) });
    for (const s of sockets) s.close();
  },
};

const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
lines.on("line", (line) => { const w = waiting.shift(); if (w) w(line.trim()); });
const nextLine = () => new Promise((r) => waiting.push(r));
async function ready() {
  out({ event: "ready" });
  const line = await nextLine();
  if (line !== "go") process.exit(2);
}

scenarios[cfg.scenario]()
  .then(async () => { await nextLine(); process.exit(0); })
  .catch((err) => { out({ event: "error", error: String(err && err.stack || err) });
    process.exit(1); });

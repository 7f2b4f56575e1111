// What the long-lived Node peers share: the JSON form of values ({"$bin": "<hex>"} for binary,
// as sio_client.js does) and a command loop over stdin/stdout, one JSON object per line.
// A command is {id, op, ...params}; its one reply is {id, ok: true, result} or
// {id, ok: false, error}. Commands run concurrently (a "wait" does not hold up the others).
"use strict";
const readline = require("readline");

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
  if (v instanceof Set) return [...v].map(encode);
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  }
  return v === undefined ? null : v;
};

// One JSON line; U+2028/U+2029 escaped so that line splitters (Python's splitlines) keep it whole.
const line = (value) =>
  JSON.stringify(value).replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029") + "\n";

const write = (value) => process.stdout.write(line(value));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs `handlers[op](params)` for every command line; `onEnd` runs once stdin closes (the test
// is done with this peer).
function serve(handlers, onEnd) {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on("line", async (text) => {
    if (!text.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(text);
    } catch (err) {
      write({ id: null, ok: false, error: "bad JSON: " + err.message });
      return;
    }
    const handler = handlers[cmd.op];
    try {
      if (!handler) throw new Error("unknown op " + cmd.op);
      const result = await handler(cmd);
      write({ id: cmd.id, ok: true, result: encode(result) });
    } catch (err) {
      write({ id: cmd.id, ok: false, error: String((err && err.message) || err) });
    }
  });
  rl.on("close", () => Promise.resolve(onEnd && onEnd()).finally(() => process.exit(0)));
}

module.exports = { revive, encode, line, write, sleep, serve };

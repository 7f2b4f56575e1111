// Two users chat through the demo page in headless Chromium. The page loads the socket.io client
// from the official CDN; that request is answered with the same bundle from npm (no network).
// Usage: node demo_browser.js '{"url": "http://127.0.0.1:PAGE/"}'
"use strict";
const path = require("path");
const { chromium } = require("playwright-core");

const cfg = JSON.parse(process.argv[2]);
const BUNDLE = path.join(__dirname, "node_modules/sio4/dist/socket.io.min.js");
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function user(browser, nick) {
  const page = await browser.newPage();
  await page.route("https://cdn.socket.io/**", (route) => route.fulfill({ path: BUNDLE }));
  await page.goto(cfg.url);
  await page.waitForFunction(() => document.querySelector("#status").textContent
    .startsWith("connected"), null, { timeout: 10000 });
  await page.fill("#join input[name=nick]", nick);
  await page.click("#join button");
  await page.waitForSelector("#say:not([hidden])", { timeout: 10000 });
  return page;
}

(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS });
  try {
    const alice = await user(browser, "alice");
    const bob = await user(browser, "bob");
    await alice.fill("#say input[name=text]", "hello from alice 😀");
    await alice.click("#say button");
    await bob.waitForFunction(() => document.querySelector("#log").textContent
      .includes("alice: hello from alice 😀"), null, { timeout: 10000 });
    await alice.waitForTimeout(300); // let the polling → WebSocket upgrade finish
    const out = {
      aliceLog: await alice.textContent("#log"),
      bobLog: await bob.textContent("#log"),
      status: await alice.textContent("#status"),
    };
    process.stdout.write(JSON.stringify(out) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err) }) + "\n");
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();

// The demo page in headless Chromium.
// Usage: node demo_browser.js '{"url": "http://127.0.0.1:PAGE/", "network": "cdn"}'
// Nothing leaves the machine: requests to anything but 127.0.0.1/localhost are aborted, except
// that, by network: "cdn" (default): the official CDN answers with the same bundle from npm;
// "not-a-bundle": the CDN answers with a script that defines no io(); "offline": nothing
// answers for the CDN either, as on a machine without internet access.
// expect: "chat" (default): two users chat, the output has both logs and the status line;
//   "no-client": one page per network of "networks", each of which must say that the client
//   bundle did not load: the output has, per page, its status line and whether the join form
//   is hidden. The output also lists the requests aborted.
"use strict";
const path = require("path");
const { launch } = require("./chromium");

const cfg = JSON.parse(process.argv[2]);
const BUNDLE = path.join(__dirname, "node_modules/sio4/dist/socket.io.min.js");
const aborted = [];

async function open(browser, network) {
  const page = await browser.newPage();
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (["127.0.0.1", "localhost"].includes(url.hostname)) return route.continue();
    if (url.hostname === "cdn.socket.io" && network === "cdn") {
      return route.fulfill({ path: BUNDLE });
    }
    if (url.hostname === "cdn.socket.io" && network === "not-a-bundle") {
      return route.fulfill({ contentType: "application/javascript",
        body: "window.notSocketIo = true;" });
    }
    aborted.push(url.href);
    return route.abort("internetdisconnected");
  });
  await page.goto(cfg.url);
  return page;
}

async function user(browser, nick) {
  const page = await open(browser, cfg.network || "cdn");
  await page.waitForFunction(() => document.querySelector("#status").textContent
    .startsWith("connected"), null, { timeout: 10000 });
  await page.fill("#join input[name=nick]", nick);
  await page.click("#join button");
  await page.waitForSelector("#say:not([hidden])", { timeout: 10000 });
  return page;
}

async function chat(browser) {
  const alice = await user(browser, "alice");
  const bob = await user(browser, "bob");
  await alice.fill("#say input[name=text]", "hello from alice 😀");
  await alice.click("#say button");
  await bob.waitForFunction(() => document.querySelector("#log").textContent
    .includes("alice: hello from alice 😀"), null, { timeout: 10000 });
  await alice.waitForTimeout(300); // let the polling → WebSocket upgrade finish
  return {
    aliceLog: await alice.textContent("#log"),
    bobLog: await bob.textContent("#log"),
    status: await alice.textContent("#status"),
  };
}

async function noClient(browser) {
  const pages = [];
  for (const network of cfg.networks) {
    const page = await open(browser, network);
    await page.waitForSelector("#status.error", { timeout: 10000 });
    pages.push({
      status: await page.textContent("#status"),
      joinHidden: await page.$eval("#join", (form) => form.hidden),
    });
  }
  return { pages };
}

(async () => {
  const browser = await launch();
  try {
    const out = await (cfg.expect === "no-client" ? noClient : chat)(browser);
    out.aborted = aborted;
    process.stdout.write(JSON.stringify(out) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err), aborted }) + "\n");
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();

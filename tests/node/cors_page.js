// One headless Debian Chromium (driven by playwright-core) serving many page loads, so that a
// test module pays for one browser launch (Playwright gives it a fresh temporary profile).
// Prints {"ready": true, "version": "..."} once the browser runs, then reads one JSON command per
// line on stdin and answers one JSON line per command on stdout; exits when stdin closes.
//   {"url": "http://127.0.0.1:PORT/page#...", "timeout": 15000}
// Each command opens the URL in a fresh browser context (empty cookie jar), waits until the page
// sets window.__result, and answers
//   {"result": <window.__result>, "cookies": [...the context's cookies after the load...],
//    "console": ["error: Access to XMLHttpRequest ... blocked by CORS policy ...", ...],
//    "failed": ["GET http://...: net::ERR_FAILED", ...],
//    "blockedCookies": [{"on": "set"|"send", "reasons": ["UserPreferences"], ...}]}
// (blockedCookies: Chromium's own reasons, from CDP, for cookies it refused to store or send)
// or the same with "error" instead of "result" when the page did not finish in time.
// Usage: node cors_page.js   (commands on stdin)
"use strict";
const readline = require("readline");
const { launch } = require("./chromium");

async function load(browser, cmd) {
  const context = await browser.newContext();
  const out = { console: [], failed: [], blockedCookies: [] };
  try {
    const page = await context.newPage();
    page.on("console", (m) => out.console.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
    page.on("requestfailed", (r) =>
      out.failed.push(`${r.method()} ${r.url()}: ${(r.failure() || {}).errorText}`));
    // Chromium's own account of the cookies it refused to store (Set-Cookie) or to send
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    cdp.on("Network.responseReceivedExtraInfo", (e) => {
      for (const b of e.blockedCookies || [])
        out.blockedCookies.push({ on: "set", reasons: b.blockedReasons, line: b.cookieLine });
    });
    cdp.on("Network.requestWillBeSentExtraInfo", (e) => {
      for (const c of e.associatedCookies || [])
        if ((c.blockedReasons || []).length)
          out.blockedCookies.push({ on: "send", reasons: c.blockedReasons, name: c.cookie.name });
    });
    await page.goto(cmd.url);
    await page.waitForFunction(() => window.__result !== undefined, null,
      { timeout: cmd.timeout || 15000 });
    out.result = await page.evaluate(() => window.__result);
    out.cookies = await context.cookies();
  } catch (err) {
    out.error = String(err);
  } finally {
    await context.close();
  }
  return out;
}

(async () => {
  const browser = await launch();
  process.stdout.write(JSON.stringify({ ready: true, version: browser.version() }) + "\n");
  const lines = readline.createInterface({ input: process.stdin });
  try {
    for await (const line of lines) {
      if (!line.trim()) continue;
      let answer;
      try {
        answer = await load(browser, JSON.parse(line));
      } catch (err) {
        answer = { error: String(err) };
      }
      process.stdout.write(JSON.stringify(answer) + "\n");
    }
  } finally {
    await browser.close();
  }
})().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String(err) }) + "\n");
  process.exitCode = 1;
});

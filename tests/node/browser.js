// Opens a page in headless Debian Chromium (driven by playwright-core) and prints, as JSON on
// stdout, the value the page stores in window.__result (waiting for it), plus console errors.
// Usage: node browser.js '{"url": "http://127.0.0.1:PORT/page", "timeout": 15000}'
"use strict";
const { launch } = require("./chromium");

const cfg = JSON.parse(process.argv[2]);

(async () => {
  const browser = await launch();
  const console_ = [];
  try {
    const page = await browser.newPage();
    page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
    await page.goto(cfg.url);
    await page.waitForFunction(() => window.__result !== undefined, null,
      { timeout: cfg.timeout || 15000 });
    const result = await page.evaluate(() => window.__result);
    process.stdout.write(JSON.stringify({ result, console: console_ }) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err), console: console_ }) + "\n");
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();

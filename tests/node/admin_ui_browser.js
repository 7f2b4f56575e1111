// Drives the Socket.IO Admin UI (the build the @socket.io/admin-ui package ships, served by the
// test from 127.0.0.1) in headless Chromium against a sockjet server, as a person would: a login
// with a wrong password (refused), then the right one; the Servers, Sockets and socket pages;
// a room joined and a socket disconnected by clicking; an "emit" command sent over the UI's own
// admin connection (the 0.5 UI has no form for it). Saves screenshots and prints JSON.
// The page's web fonts and icon font come from CDNs: the icon font is answered from the npm
// package @mdi/font, the text font request is answered empty, anything else not local aborts.
// Usage: node admin_ui_browser.js '{"ui": "http://127.0.0.1:P/", "server": "http://127.0.0.1:S",
//   "password": "...", "ids": {"v4-ws": sid, ...}, "chat": sid, "screenshots": {name: path}}'
"use strict";
const path = require("path");
const { launch } = require("./chromium");

const cfg = JSON.parse(process.argv[2]);
const MDI = path.join(__dirname, "node_modules/mdi-font");
const T = { timeout: 10000 };

// Keeps the page's WebSocket objects (the UI's socket.io-client makes them), so that the test can
// send a command over the UI's own, logged-in connection.
function captureWebSockets() {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.received = 0;
      this.addEventListener("message", () => { this.received += 1; });
      window.__sockets.push(this);
    }
  };
}

async function login(page, password) {
  const dialog = page.locator(".v-dialog--active");
  await dialog.waitFor(T);
  await dialog.getByLabel("Server URL").fill(cfg.server);
  await dialog.getByLabel("Username").fill("admin");
  await dialog.getByLabel("Password").fill(password);
  await dialog.locator("button[type=submit]").click();
}

const text = (page) => page.evaluate(() => document.body.innerText);

// the namespace selector of the page shown (the one leaving may still be in its transition)
async function selectNamespace(page, name) {
  await page.waitForTimeout(600);
  await page.locator(".selector >> visible=true").first().click();
  await page.locator(".v-menu__content .v-list-item >> visible=true",
    { hasText: new RegExp("^" + name + "$") }).click();
}

async function waitText(page, needle, timeout = 10000) {
  await page.waitForFunction((n) => document.body.innerText.includes(n), needle, { timeout });
}

(async () => {
  const browser = await launch();
  const out = { console: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
    // the last route registered is tried first
    await context.route((url) => !["127.0.0.1", "localhost"].includes(url.hostname),
      (route) => route.abort());
    await context.route("https://fonts.googleapis.com/**",
      (route) => route.fulfill({ contentType: "text/css", body: "" }));
    await context.route("https://cdn.jsdelivr.net/npm/@mdi/font@latest/**", (route) => {
      const rel = new URL(route.request().url()).pathname.split("@mdi/font@latest/")[1];
      route.fulfill({ path: path.join(MDI, rel) });
    });
    await context.addInitScript(captureWebSockets);
    const page = await context.newPage();
    page.on("console", (m) => out.console.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
    await page.goto(cfg.ui);

    // a wrong password: the dialog stays, with the server's refusal
    await login(page, "not the password");
    const error = page.locator(".v-dialog--active .red--text");
    await error.waitFor(T);
    out.refused = (await error.innerText()).trim();
    await page.screenshot({ path: cfg.screenshots.refused });

    // the right one
    await login(page, cfg.password);
    await page.locator(".v-dialog--active").waitFor({ state: "detached", timeout: 10000 });
    await waitText(page, "/chat"); // the dashboard's namespaces card, from server_stats
    await page.waitForTimeout(2500); // one more server_stats: the histograms have two points
    await page.screenshot({ path: cfg.screenshots.dashboard });

    await page.goto(cfg.ui + "#/servers/");
    await waitText(page, "sockjet-demo");
    out.servers = await page.evaluate(() =>
      document.querySelector("#app").__vue__.$store.state.servers.servers.map((s) => s.serverId));
    out.servers_text = await text(page);

    await page.goto(cfg.ui + "#/sockets/");
    for (const sid of Object.values(cfg.ids)) await waitText(page, sid);
    await page.waitForTimeout(500); // icons and the transport chips settle
    out.sockets_text = await text(page);
    out.transports = await page.evaluate(() => {
      const store = document.querySelector("#app").__vue__.$store;
      const main = store.state.main.namespaces.find((n) => n.name === "/");
      return main.sockets.map((s) => s.transport);
    });
    await page.screenshot({ path: cfg.screenshots.sockets });

    // a socket's page: its rooms; join one from the UI's form
    const v4 = cfg.ids["v4-ws"];
    await page.goto(cfg.ui + "#/n/%2F/sockets/" + encodeURIComponent(v4));
    await waitText(page, "user:v4-ws");
    const join = page.locator("form").filter({ has: page.getByLabel("Join a room") });
    await join.getByLabel("Join a room").fill("from-the-ui");
    await join.locator("button[type=submit]").click();
    await waitText(page, "from-the-ui"); // room_joined came back from the server
    out.rooms_text = await text(page);
    await page.screenshot({ path: cfg.screenshots.socket });

    // the /chat namespace, chosen with the selector on the Rooms page
    await page.goto(cfg.ui + "#/rooms/");
    await selectNamespace(page, "/chat");
    await waitText(page, "general");
    out.rooms_text += "\n" + (await text(page));

    // disconnect the v2 polling socket from the Sockets page (its row's button)
    await page.goto(cfg.ui + "#/sockets/");
    await selectNamespace(page, "/");
    const row = page.locator("tbody tr", { hasText: cfg.ids["v2-poll"] });
    await row.locator("button").click();
    await page.waitForFunction((sid) => !document.querySelector("#app").__vue__.$store.state
      .main.namespaces.find((n) => n.name === "/").sockets.some((s) => s.id === sid),
    cfg.ids["v2-poll"], T); // the server's socket_disconnected reached the UI

    // "emit" over the UI's own connection, once it runs on WebSocket
    await page.waitForFunction(() => window.__sockets.some(
      (ws) => ws.readyState === 1 && ws.received >= 3), null, T);
    out.emitted = await page.evaluate((sid) => {
      const ws = window.__sockets.find((w) => w.readyState === 1 && w.received >= 3);
      ws.send("42/admin," + JSON.stringify(["emit", "/", sid, "from-ui",
        "hello from the Admin UI"]));
      return true;
    }, v4);
    out.url = page.url();
  } catch (err) {
    out.error = String(err && err.stack || err);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})();

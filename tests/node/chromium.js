// The headless Debian Chromium every browser test drives (playwright-core): one launch, with
// the flags that keep it from reaching anything but what the test serves. CHROMIUM names
// another binary.
"use strict";
const { chromium } = require("playwright-core");

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: FLAGS, headless: true,
  });
}

module.exports = { launch };

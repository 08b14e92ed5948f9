// The console's browser tests: Debian's Chromium (no browser is downloaded), one worker,
// against the real server binary that each test file starts on a fresh database.
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: "tests",
  workers: 1,
  fullyParallel: false,
  timeout: 60_000,
  reporter: [["list"]],
  use: {
    browserName: "chromium",
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
    // The clipboard is what the Copy button writes to.
    permissions: ["clipboard-read", "clipboard-write"],
  },
});

// The real token authority for the browser tests: the binary `cargo build` made (or
// $TOKEN_AUTHORITY_BIN), on a fresh SQLite database, on free ports; and tokenctl beside it.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const target = resolve(import.meta.dirname, "../../target/debug");
const SERVER = process.env.TOKEN_AUTHORITY_BIN ?? join(target, "token-authority");
const TOKENCTL = process.env.TOKENCTL_BIN ?? join(target, "tokenctl");

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => done(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export interface Authority {
  console: string;
  grpc: string;
  bootstrapToken: string;
  /** Runs tokenctl as `token` and returns what it printed (JSON output). */
  tokenctl(token: string, ...args: string[]): string;
  stop(): void;
}

export async function startAuthority(): Promise<Authority> {
  const dir = mkdtempSync(join(tmpdir(), "console-test-"));
  const [grpcPort, consolePort] = [await freePort(), await freePort()];
  const grpc = `http://127.0.0.1:${grpcPort}`;
  const child: ChildProcess = spawn(
    SERVER,
    [
      "serve",
      "--database-url",
      `sqlite://${join(dir, "console.db")}`,
      "--listen-addr",
      `127.0.0.1:${grpcPort}`,
      "--console-addr",
      `127.0.0.1:${consolePort}`,
      "--metrics-addr",
      "off",
      "--bootstrap-token-file",
      join(dir, "bootstrap.token"),
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const console = `http://127.0.0.1:${consolePort}`;
  for (let attempt = 0; ; attempt++) {
    try {
      const answer = await fetch(console);
      if (answer.ok) break;
    } catch {
      // Not listening yet.
    }
    if (attempt > 200 || child.exitCode !== null) throw new Error("the authority did not start");
    await new Promise((resume) => setTimeout(resume, 50));
  }
  const bootstrapToken = readFileSync(join(dir, "bootstrap.token"), "utf8").trim();
  return {
    console,
    grpc,
    bootstrapToken,
    tokenctl(token: string, ...args: string[]): string {
      return execFileSync(TOKENCTL, ["--endpoint", grpc, "--output", "json", ...args], {
        env: { ...process.env, TOKENCTL_TOKEN: token },
        encoding: "utf8",
      });
    },
    stop() {
      child.kill("SIGTERM");
    },
  };
}

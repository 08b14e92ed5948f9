// Builds console/dist from console/src: one bundle (app.js), the page, its style sheet and
// its icon.
// The output is committed and embedded in the server binary; `scripts/test` rebuilds it
// and fails if it differs from what is committed.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  outfile: "dist/app.js",
  logLevel: "warning",
});
copyFileSync("src/index.html", "dist/index.html");
copyFileSync("src/app.css", "dist/app.css");
copyFileSync("src/favicon.svg", "dist/favicon.svg");

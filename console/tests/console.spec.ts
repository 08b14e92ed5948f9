// The console in a real browser (Debian's Chromium) against the real server: sign-in, the
// tokens list and its filters, "Generate token" with its secret shown once, revoking,
// live updates from tokenctl, a caller without tokens.read, XSS probes, and axe-core.

import { expect, type Page, test } from "@playwright/test";
import { expectAccessible, guard, SHOTS, signIn as signInAt } from "./helpers";
import { type Authority, startAuthority } from "./server";

let authority: Authority;

test.beforeAll(async () => {
  authority = await startAuthority();
});

test.afterAll(() => authority?.stop());

const signIn = (page: Page, token: string) => signInAt(page, authority.console, token);

/** Everything the page holds that a script or a later visitor could read. */
async function pageState(page: Page): Promise<string> {
  return page.evaluate(() => {
    const values = [...document.querySelectorAll("input, textarea")].map(
      (control) => (control as HTMLInputElement).value,
    );
    return [
      document.documentElement.outerHTML,
      values.join("\n"),
      JSON.stringify({ ...localStorage }),
      JSON.stringify({ ...sessionStorage }),
      document.cookie,
      location.href,
    ].join("\n");
  });
}

test("sign in with the bootstrap token; it is kept nowhere", async ({ page }) => {
  const problems = guard(page);
  await page.goto(authority.console);
  await expectAccessible(page, "sign-in");
  await page.screenshot({ path: `${SHOTS}sign-in.png` });
  await signIn(page, authority.bootstrapToken);
  await expect(page.getByRole("heading", { name: "API tokens" })).toBeVisible();
  await expect(page.getByText("operator")).toBeVisible();
  expect(await pageState(page)).not.toContain(authority.bootstrapToken);
  await expectAccessible(page, "tokens");
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByLabel("API token")).toBeVisible();
  expect(problems).toEqual([]);
});

test("a generated token's secret is shown once, works, and is gone when the dialog closes", async ({ page }) => {
  const problems = guard(page);
  await signIn(page, authority.bootstrapToken);
  await page.getByRole("button", { name: "Generate token" }).click();
  await expectAccessible(page, "generate dialog");
  await page.getByLabel("Name", { exact: true }).fill("ci deploys");
  await page.getByLabel("Description").fill("used by CI");
  await page.getByLabel("tokens.read").check();
  await page.getByLabel("Labels").fill("team=payments");
  await page.screenshot({ path: `${SHOTS}generate.png` });
  // "On a date" without a date is refused, not taken for "never".
  await page.getByLabel("Expires", { exact: true }).selectOption({ label: "on a date" });
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  await expect(page.getByRole("alert")).toContainText("Choose the expiry date");
  await page.getByLabel("Expires", { exact: true }).selectOption({ label: "30 days" });
  await page.getByRole("button", { name: "Generate", exact: true }).click();

  const secretBox = page.getByLabel("The new secret");
  await expect(secretBox).toBeVisible();
  const secret = await secretBox.inputValue();
  expect(secret).toMatch(/^tka_[A-Za-z0-9]{38}$/);
  await expect(page.getByText("It is shown only once")).toBeVisible();
  // The secret is masked: a real one, even of a throwaway database, is not put in the docs.
  await page.screenshot({ path: `${SHOTS}secret.png`, mask: [secretBox] });
  // Escape does not dismiss a secret that cannot be shown again, even twice.
  await page.keyboard.press("Escape");
  await expect(secretBox).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(secretBox).toBeVisible();
  expect(await secretBox.inputValue()).toBe(secret);
  await page.getByRole("button", { name: "Copy" }).click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
  await page.getByRole("button", { name: "I have copied it" }).click();
  await expect(secretBox).toHaveCount(0);

  // It works, over gRPC, with what it was given.
  const listed = JSON.parse(authority.tokenctl(secret, "token", "list"));
  expect(JSON.stringify(listed)).toContain("ci deploys");
  // And the page holds it nowhere.
  expect(await pageState(page)).not.toContain(secret);
  await expect(page.getByRole("cell", { name: "ci deploys", exact: true })).toBeVisible();
  expect(problems).toEqual([]);
});

test("filters narrow the list", async ({ page }) => {
  guard(page);
  authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "nightly export");
  await signIn(page, authority.bootstrapToken);
  await page.getByLabel("Name contains").fill("nightly");
  await page.getByLabel("Name contains").press("Enter");
  await expect(page.getByRole("cell", { name: "nightly export", exact: true })).toBeVisible();
  await expect(page.getByRole("cell", { name: "ci deploys", exact: true })).toHaveCount(0);
  await page.getByLabel("Name contains").fill("");
  await page.getByLabel("Name contains").press("Enter");
  await page.getByLabel("Created").selectOption("older");
  await expect(page.getByText("No tokens match.")).toBeVisible();
  await page.getByLabel("Created").selectOption("7d");
  await expect(page.getByRole("cell", { name: "nightly export", exact: true })).toBeVisible();
  await page.getByLabel("State").selectOption({ label: "revoked" });
  await expect(page.getByText("No tokens match.")).toBeVisible();
});

test("revoking with a reason, and a revocation by tokenctl shows without a reload", async ({ page }) => {
  const problems = guard(page);
  const created = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "to revoke here"),
  );
  const other = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "revoked elsewhere"),
  );
  await signIn(page, authority.bootstrapToken);
  await page.getByRole("button", { name: "Revoke to revoke here" }).click();
  await page.getByLabel("Reason").fill("rotated");
  await page.getByRole("button", { name: "Revoke", exact: true }).click();
  const state = (id: string) => page.locator(`tr[data-token-id="${id}"] td.state`);
  await expect(state(created.token.id)).toHaveText("revoked");
  await page.screenshot({ path: `${SHOTS}tokens.png`, fullPage: true });

  // Revoked with tokenctl while the page is open: it shows within a second or two.
  await expect(state(other.token.id)).toHaveText("active");
  authority.tokenctl(authority.bootstrapToken, "token", "revoke", other.token.id, "--reason", "leaked");
  await expect(state(other.token.id)).toHaveText("revoked", { timeout: 3000 });
  expect(problems).toEqual([]);
});

test("markup typed into a name is shown as text and runs nothing", async ({ page }) => {
  const problems = guard(page);
  const probes = [
    `<img src=x onerror="alert('xss')">`,
    `"><script>alert('xss')</script>`,
    `<svg onload=alert(1)>`,
  ];
  for (const probe of probes) {
    authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", probe, "--description", probe);
  }
  await signIn(page, authority.bootstrapToken);
  for (const probe of probes) {
    await expect(page.getByRole("cell", { name: probe, exact: true })).toBeVisible();
  }
  expect(await page.locator("table img, table script, table svg").count()).toBe(0);
  // Through the page's own form as well.
  await page.getByRole("button", { name: "Generate token" }).click();
  await page.getByLabel("Name", { exact: true }).fill(`<img src=y onerror=alert(2)>`);
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  await page.getByRole("button", { name: "I have copied it" }).click();
  await expect(page.getByRole("cell", { name: `<img src=y onerror=alert(2)>`, exact: true })).toBeVisible();
  expect(problems).toEqual([]);
});

test("a caller without tokens.read is told so in plain words", async ({ page }) => {
  guard(page);
  const principal = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "principal", "create", "--name", "watcher", "--permission", "tokens.verify"),
  );
  const created = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "watcher token", "--owner", principal.id),
  );
  await signIn(page, created.secret);
  await expect(page.getByRole("alert")).toContainText("tokens.read");
  await page.screenshot({ path: `${SHOTS}refused.png` });
  await expect(page.getByRole("button", { name: "Generate token" })).toHaveCount(0);
});

test("a wrong token is refused at sign-in; a token pasted with a scheme or spaces is not", async ({ page }) => {
  const problems = guard(page);
  // No token holds these characters: refused by the page, before any header quotes them.
  await signIn(page, "tka_not-a-real-token\u00e9");
  await expect(page.getByRole("alert")).toContainText("not an API token");
  expect(await pageState(page)).not.toContain("not-a-real-token");
  // Well formed, unknown to the authority: its refusal.
  await signIn(page, "tka_0000000000000000000000000000000000000000");
  await expect(page.getByRole("alert")).toContainText("not a well-formed token");
  await expect(page.getByLabel("API token")).toBeVisible();
  // As copied from a header, or wrapped by a terminal.
  const half = Math.floor(authority.bootstrapToken.length / 2);
  const wrapped = `Bearer ${authority.bootstrapToken.slice(0, half)} \t ${authority.bootstrapToken.slice(half)}`;
  await signIn(page, wrapped);
  await expect(page.getByRole("heading", { name: "API tokens" })).toBeVisible();
  expect(problems).toEqual([]);
});

test("usable at 375 pixels wide", async ({ page }) => {
  await page.setViewportSize({ width: 375, height: 800 });
  await signIn(page, authority.bootstrapToken);
  await expect(page.getByRole("button", { name: "Generate token" })).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await expectAccessible(page, "narrow tokens page");
});

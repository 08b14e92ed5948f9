// The console's other pages in a real browser against the real server: a token's edit,
// duplicate, reset (with and without grace) and history; principals; the account's
// API-access switch and token policy; the audit log; a leak report; an operator working in
// a tenant's account, and a tenant administrator who cannot reach another account.

import { expect, type Page, test } from "@playwright/test";
import { expectAccessible, guard, SHOTS, signIn as signInAt } from "./helpers";
import { type Authority, startAuthority } from "./server";

let authority: Authority;

test.beforeAll(async () => {
  authority = await startAuthority();
});

test.afterAll(() => authority?.stop());

async function signIn(page: Page, token: string): Promise<void> {
  await signInAt(page, authority.console, token);
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
}

const stateOf = (page: Page, id: string) => page.locator(`tr[data-token-id="${id}"] td.state`);

/** Whether `secret` is accepted over gRPC (tokenctl lists tokens with it). */
function works(secret: string): boolean {
  try {
    authority.tokenctl(secret, "token", "list");
    return true;
  } catch {
    return false;
  }
}

test("a token's page: edit, duplicate, reset with and without grace, history", async ({ page }) => {
  const problems = guard(page);
  const created = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "billing sync", "--scope", "tokens.read", "--scope", "tokens.verify"),
  );
  const id = created.token.id;
  await signIn(page, authority.bootstrapToken);

  // Edit: a new name and description, a label, one scope less.
  await page.getByRole("button", { name: "Edit billing sync" }).click();
  await expectAccessible(page, "edit dialog");
  await page.getByLabel("Name", { exact: true }).fill("billing sync v2");
  await page.getByLabel("Description").fill("nightly <b>sync</b>");
  await page.getByLabel("Labels").fill("team=billing");
  await page.getByLabel("tokens.verify").uncheck();
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByRole("cell", { name: "billing sync v2", exact: true })).toBeVisible();
  const edited = JSON.parse(authority.tokenctl(authority.bootstrapToken, "token", "get", id));
  expect(edited.description ?? edited.token?.description).toBe("nightly <b>sync</b>");
  expect(JSON.stringify(edited)).toContain("team");
  expect(JSON.stringify(edited)).not.toContain("tokens.verify");

  // Duplicate: a new token, its secret shown once, working.
  await page.getByRole("button", { name: "Duplicate billing sync v2" }).click();
  await page.getByLabel("Name of the copy").fill("billing sync copy");
  await page.getByRole("button", { name: "Duplicate", exact: true }).click();
  const copySecret = await page.getByLabel("The new secret").inputValue();
  await page.getByRole("button", { name: "I have copied it" }).click();
  expect(works(copySecret)).toBe(true);
  await expect(page.getByRole("cell", { name: "billing sync copy", exact: true })).toBeVisible();

  // Reset without grace: the old secret stops at once, the new one works.
  await page.getByRole("button", { name: "Reset billing sync v2" }).click();
  await page.getByRole("button", { name: "Reset", exact: true }).click();
  const reset = await page.getByLabel("The new secret").inputValue();
  await page.getByRole("button", { name: "I have copied it" }).click();
  expect(works(created.secret)).toBe(false);
  expect(works(reset)).toBe(true);

  // Reset with a day's grace: both work for now.
  await page.getByRole("button", { name: "Reset billing sync v2" }).click();
  await page.getByLabel("Grace period for the old secret").selectOption({ label: "1 day" });
  await page.getByRole("button", { name: "Reset", exact: true }).click();
  const again = await page.getByLabel("The new secret").inputValue();
  await page.getByRole("button", { name: "I have copied it" }).click();
  expect(works(reset)).toBe(true);
  expect(works(again)).toBe(true);

  // Its history shows what was done.
  await page.getByRole("button", { name: "History billing sync v2" }).click();
  const history = page.locator("ol.history");
  await expect(history).toContainText("token.update");
  await expect(history).toContainText("token.reset");
  await expect(history).toContainText("token.create");
  await page.screenshot({ path: `${SHOTS}history.png` });
  await page.getByRole("button", { name: "Close" }).click();

  // Disable and enable.
  await page.getByRole("button", { name: "Disable billing sync v2" }).click();
  await expect(stateOf(page, id)).toHaveText("disabled");
  expect(works(again)).toBe(false);
  await page.getByRole("button", { name: "Enable billing sync v2" }).click();
  await expect(stateOf(page, id)).toHaveText("active");
  expect(works(again)).toBe(true);

  // Delete after a confirmation: gone from the list, refused.
  await page.getByRole("button", { name: "Delete billing sync copy" }).click();
  await page.getByRole("button", { name: "Delete", exact: true }).click();
  await expect(page.getByRole("cell", { name: "billing sync copy", exact: true })).toHaveCount(0);
  expect(works(copySecret)).toBe(false);
  expect(problems).toEqual([]);
});

test("principals: create, change permissions, disable", async ({ page }) => {
  const problems = guard(page);
  await signIn(page, authority.bootstrapToken);
  await page.getByRole("button", { name: "Principals", exact: true }).click();
  await page.getByRole("button", { name: "New principal" }).click();
  await page.getByLabel("Name", { exact: true }).fill(`<script>alert("p")</script> reporter`);
  await page.getByLabel("Permissions").fill("tokens.read\ntokens.verify");
  await page.getByRole("button", { name: "Create" }).click();
  const name = `<script>alert("p")</script> reporter`;
  await expect(page.getByRole("cell", { name, exact: true })).toBeVisible();
  await expectAccessible(page, "principals");
  await page.screenshot({ path: `${SHOTS}principals.png`, fullPage: true });
  const row = page.locator("tr", { has: page.getByRole("cell", { name, exact: true }) });
  const principalId = await row.getAttribute("data-principal-id");

  await page.getByRole("button", { name: `Edit ${name}` }).click();
  await page.getByLabel("Permissions").fill("tokens.read");
  await page.getByRole("button", { name: "Save" }).click();
  await expect(row.locator("td").nth(3)).toHaveText("tokens.read");

  // A token of theirs stops working while they are disabled.
  const theirs = JSON.parse(authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "reporter token", "--owner", principalId ?? ""));
  expect(works(theirs.secret)).toBe(true);
  await page.getByRole("button", { name: `Disable ${name}` }).click();
  await page.getByRole("button", { name: "Disable", exact: true }).click();
  await expect(row.locator("td.state")).toHaveText("disabled");
  expect(works(theirs.secret)).toBe(false);
  await page.getByRole("button", { name: `Enable ${name}` }).click();
  await expect(row.locator("td.state")).toHaveText("active");

  // Generating a token for them: chosen by name, scopes from what both of you hold.
  await page.getByRole("button", { name: "Tokens", exact: true }).click();
  await page.getByRole("button", { name: "Generate token" }).click();
  await page.getByLabel("Owner", { exact: true }).selectOption(principalId ?? "");
  await expect(page.locator("fieldset.scopes input")).toHaveCount(1);
  await expect(page.getByLabel("tokens.read")).toBeVisible();
  await page.getByLabel("Name", { exact: true }).fill("for the reporter");
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  await page.getByRole("button", { name: "I have copied it" }).click();
  const generated = page.locator("tr", { has: page.getByRole("cell", { name: "for the reporter", exact: true }) });
  await expect(generated.locator("td").nth(1)).toHaveText(name);
  expect(problems).toEqual([]);
});

test("the account: API access behind its statement, and the token policy", async ({ page }) => {
  const problems = guard(page);
  // A tenant, its administrator, and one of its tokens.
  const account = JSON.parse(authority.tokenctl(authority.bootstrapToken, "account", "create", "--name", "Initech"));
  const accountId = account.id ?? account.account?.id;
  const adminPrincipal = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "principal", "create", "--name", "initech admin", "--account", accountId,
      "--permission", "tokens.read", "--permission", "tokens.create", "--permission", "tokens.update",
      "--permission", "tokens.verify", "--permission", "accounts.manage", "--permission", "audit.read"),
  );
  const adminToken = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "initech admin token", "--owner", adminPrincipal.id),
  ).secret;
  const old = JSON.parse(authority.tokenctl(adminToken, "token", "create", "--name", "old integration")).secret;
  expect(works(old)).toBe(true);

  // The operator switches the tenant's API access off, and on again behind the statement.
  await signIn(page, authority.bootstrapToken);
  await page.getByLabel("Account", { exact: true }).fill(accountId);
  await page.getByLabel("Account", { exact: true }).press("Enter");
  await page.getByRole("button", { name: "Account", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Initech" })).toBeVisible();
  await page.getByRole("button", { name: "Disable API access" }).click();
  await page.getByRole("button", { name: "Disable API access" }).last().click();
  await expect(page.getByText("API access is disabled.")).toBeVisible();
  expect(works(old)).toBe(false);
  const enable = page.getByRole("button", { name: "Enable API access" });
  await expect(enable).toBeDisabled();
  await expectAccessible(page, "account");
  await page.screenshot({ path: `${SHOTS}account.png`, fullPage: true });
  await page.getByLabel("I have read this statement and agree").check();
  await enable.click();
  await expect(page.getByText("API access is enabled.")).toBeVisible();
  // Old tokens stay dead.
  expect(works(old)).toBe(false);

  // The token policy: at most 90 days, and only tokens.read.
  await page.getByLabel("Longest lifetime (days)").fill("90");
  await page.getByLabel("Allowed scopes").fill("tokens.read");
  await page.getByRole("button", { name: "Save policy" }).click();
  await expect(page.getByRole("status")).toContainText("Token policy saved.");
  // Generating a token while working in Initech: for one of Initech's principals, never
  // "yourself" (that would be a token of the operator's own account).
  await page.getByRole("button", { name: "Tokens", exact: true }).click();
  await page.getByRole("button", { name: "Generate token" }).click();
  const owner = page.getByLabel("Owner", { exact: true });
  await expect(owner.locator("option", { hasText: "yourself" })).toHaveCount(0);
  await page.getByLabel("Name", { exact: true }).fill("for initech");
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  await expect(page.getByLabel("The new secret")).toHaveCount(0);
  await owner.selectOption(adminPrincipal.id);
  await page.getByLabel("tokens.read").check();
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  await page.getByRole("button", { name: "I have copied it" }).click();
  // In Initech (the administrator's own token died with the API access switch).
  const listed = JSON.parse(authority.tokenctl(authority.bootstrapToken, "token", "list", "--account", accountId));
  expect(JSON.stringify(listed)).toContain("for initech");
  await page.getByRole("button", { name: "Account", exact: true }).click();

  // An operator who may not list Initech's principals is not offered a guess at the owner.
  const narrow = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "principal", "create", "--name", "narrow operator",
      "--permission", "tokens.read", "--permission", "tokens.create"),
  );
  const narrowToken = JSON.parse(authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "narrow", "--owner", narrow.id)).secret;
  const second = await page.context().newPage();
  await signIn(second, narrowToken);
  await second.getByLabel("Account", { exact: true }).fill(accountId);
  await second.getByLabel("Account", { exact: true }).press("Enter");
  await second.getByRole("button", { name: "Generate token" }).click();
  await expect(second.getByRole("status")).toContainText("principals.manage");
  await expect(second.getByLabel("Name", { exact: true })).toHaveCount(0);
  await second.close();

  const policy = JSON.parse(authority.tokenctl(authority.bootstrapToken, "account", "policy", "--account", accountId));
  expect(policy.max_lifetime_seconds).toBe(90 * 24 * 3600);
  expect(policy.allowed_scopes).toEqual(["tokens.read"]);
  // And the authority holds tokens to it: one that would never expire is refused.
  expect(() => authority.tokenctl(adminToken, "token", "create", "--name", "forever", "--scope", "tokens.read")).toThrow();
  expect(problems).toEqual([]);
});

test("the audit log shows what was done, and filters; markup in reasons and labels stays text", async ({ page }) => {
  const problems = guard(page);
  const made = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "audited", "--label", `note=<img src=x onerror=alert('label')>`),
  );
  authority.tokenctl(authority.bootstrapToken, "token", "revoke", made.token.id, "--reason", `audit me <img src=x onerror=alert('reason')>`);
  await signIn(page, authority.bootstrapToken);
  await page.getByRole("button", { name: "Audit log" }).click();
  await page.getByLabel("Object id").fill(made.token.id);
  await page.getByLabel("Object id").press("Enter");
  const rows = page.locator("table tbody tr");
  await expect(rows).toHaveCount(2);
  await expect(page.locator("table")).toContainText("token.revoke");
  await expect(page.locator("table")).toContainText(`audit me <img src=x onerror=alert('reason')>`);
  expect(await page.locator("table img").count()).toBe(0);
  await page.getByLabel("Action").fill("token.revoke");
  await page.getByLabel("Action").press("Enter");
  await expect(rows).toHaveCount(1);
  await expectAccessible(page, "audit");
  await page.screenshot({ path: `${SHOTS}audit.png`, fullPage: true });
  // The token's history shows the reason as text too.
  await page.getByRole("button", { name: "Tokens", exact: true }).click();
  await page.getByRole("button", { name: "History audited" }).click();
  await expect(page.locator("ol.history")).toContainText("alert('reason')");
  expect(await page.locator("dialog img").count()).toBe(0);
  expect(problems).toEqual([]);
});

test("a leak report revokes what it finds and says so per secret", async ({ page }) => {
  const problems = guard(page);
  const leaked = JSON.parse(authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "pasted in a gist"));
  await signIn(page, authority.bootstrapToken);
  await page.getByRole("button", { name: "Report a leak" }).click();
  await page.getByLabel("Leaked secrets").fill(`${leaked.secret}\nnot-a-token`);
  await page.getByLabel("Where they were found").fill("a public gist");
  await page.getByRole("button", { name: "Report and revoke" }).click();
  const results = page.locator("ol.results li");
  await expect(results.nth(0)).toContainText("revoked now");
  await expect(results.nth(1)).toContainText("not a token");
  expect(works(leaked.secret)).toBe(false);
  // Neither the form nor the results hold the secret.
  expect(await page.evaluate(() => document.documentElement.outerHTML)).not.toContain(leaked.secret);
  expect(await page.getByLabel("Leaked secrets").inputValue()).toBe("");
  await expectAccessible(page, "leaks");
  // A refused report keeps what was pasted.
  const many = Array.from({ length: 101 }, (_, i) => `tka_${i}`).join("\n");
  await page.getByLabel("Leaked secrets").fill(many);
  await page.getByRole("button", { name: "Report and revoke" }).click();
  await expect(page.getByRole("alert")).toContainText("1 to 100");
  expect(await page.getByLabel("Leaked secrets").inputValue()).toBe(many);
  expect(problems).toEqual([]);
});

test("a tenant administrator sees only its account; a script without the token gets nothing", async ({ page }) => {
  guard(page);
  const a = JSON.parse(authority.tokenctl(authority.bootstrapToken, "account", "create", "--name", "Tenant A"));
  const b = JSON.parse(authority.tokenctl(authority.bootstrapToken, "account", "create", "--name", "Tenant B"));
  const [aId, bId] = [a.id ?? a.account?.id, b.id ?? b.account?.id];
  const adminA = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "principal", "create", "--name", "a admin", "--account", aId,
      "--permission", "tokens.read", "--permission", "principals.manage", "--permission", "audit.read"),
  );
  const tokenA = JSON.parse(authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "a admin token", "--owner", adminA.id)).secret;
  const adminB = JSON.parse(
    authority.tokenctl(authority.bootstrapToken, "principal", "create", "--name", "b admin", "--account", bId, "--permission", "tokens.read"),
  );
  authority.tokenctl(authority.bootstrapToken, "token", "create", "--name", "b secret integration", "--owner", adminB.id);

  await signIn(page, tokenA);
  // No account switch is offered to a tenant administrator.
  await expect(page.getByLabel("Account", { exact: true })).toHaveCount(0);
  await expect(page.getByRole("cell", { name: "a admin token", exact: true })).toBeVisible();
  await expect(page.getByText("b secret integration")).toHaveCount(0);
  await page.getByRole("button", { name: "Principals", exact: true }).click();
  await expect(page.getByRole("cell", { name: "a admin", exact: true })).toBeVisible();
  await expect(page.getByText("b admin")).toHaveCount(0);
  // A script on the page's own origin that does not hold the token (the page keeps it to
  // itself, in memory) is refused: there is no ambient credential.
  const asked = await page.evaluate(async (other) => {
    const frame = new Uint8Array([0, 0, 0, 0, 0]);
    const answer = await fetch(`/tokenauthority.v1.AdminService/GetAccount`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: frame,
    });
    return { status: answer.headers.get("grpc-status"), other };
  }, bId);
  expect(asked.status).toBe("16"); // no credential in a script's own request: UNAUTHENTICATED
});

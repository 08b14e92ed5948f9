// The account page: its API-access switch, behind a security statement, and its token policy.

import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import type { Account, TokenPolicy } from "./gen/tokenauthority/v1/resources_pb";
import { field, h, replace } from "./dom";
import { DAY_MS, isolate, when } from "./format";
import { accountId, admin, caller, explain, may } from "./session";
import { ask } from "./ask";

/** Which load of the page is the newest: an older answer (another account) is dropped. */
let newest = 0;

export function accountPage(content: HTMLElement, notify: (message: string) => void): void {
  const reload = () => void load();
  // Drawn into an element of its own: once another page replaces it, a late answer lands in
  // a detached element and shows nowhere.
  const root = h("div");
  replace(content, root);
  replace(root, h("h1", {}, "Account"), h("p", {}, "Loading…"));

  async function load(): Promise<void> {
    const asked = ++newest;
    try {
      const [{ account }, { policy }] = await Promise.all([
        admin.getAccount({ id: accountId }),
        admin.getTokenPolicy({ accountId }),
      ]);
      if (asked !== newest) return;
      if (!account) throw new Error("no account in the answer");
      // The actions below name the account they were drawn for, never the one chosen since.
      replace(root, h("h1", {}, account.displayName), details(account), apiAccess(account, notify, reload), policyForm(account, policy, notify, reload));
    } catch (error) {
      if (asked !== newest) return;
      replace(root, h("h1", {}, "Account"), h("p", { class: "error", role: "alert" }, explain(error)));
    }
  }
  void load();
}

function details(account: Account): HTMLElement {
  return h(
    "dl",
    { class: "details" },
    h("dt", {}, "Id"),
    h("dd", {}, h("code", {}, account.id)),
    h("dt", {}, "Created"),
    h("dd", {}, when(account.createTime)),
    h("dt", {}, "Operator account"),
    h("dd", {}, account.operator ? "yes" : "no"),
  );
}

const STATEMENT =
  "API access lets every token of this account call the API as its owner. Enabling it does not revive tokens that were made unusable when it was disabled: those stay refused. Disabling it stops every token of the account at once.";

function apiAccess(account: Account, notify: (message: string) => void, reload: () => void): HTMLElement {
  const section = h(
    "section",
    { "aria-labelledby": "api-access" },
    h("h2", { id: "api-access" }, "API access"),
    h("p", { class: "state" }, account.apiAccessEnabled ? "API access is enabled." : "API access is disabled."),
  );
  // Only operators switch API access, and never the operator account's own.
  if (!may("accounts.manage") || !caller?.operator || account.operator) return section;
  const set = async (enabled: boolean) => {
    try {
      await admin.setApiAccess({ accountId: account.id, enabled });
      notify(enabled ? "API access enabled." : "API access disabled: every token of the account is refused.");
    } catch (error) {
      notify(explain(error));
    }
    reload();
  };
  if (account.apiAccessEnabled) {
    section.append(
      h("button", {
        type: "button",
        onclick: async () => {
          const question = `Disable API access for ${isolate(account.displayName)} (${account.id})? Every token of the account stops working at once, and stays refused after API access is enabled again.`;
          if ((await ask(question, "Disable API access")) !== null) {
            await set(false);
          }
        },
      }, "Disable API access"),
    );
  } else {
    const agree = h("input", { type: "checkbox", id: "agree" });
    const enable = h("button", { type: "button", class: "primary", disabled: true, onclick: () => set(true) }, "Enable API access");
    agree.addEventListener("change", () => {
      enable.disabled = !agree.checked;
    });
    section.append(
      h("p", { class: "warning" }, STATEMENT),
      h("div", { class: "check" }, agree, h("label", { for: "agree" }, "I have read this statement and agree")),
      enable,
    );
  }
  return section;
}

function policyForm(
  account: Account,
  policy: TokenPolicy | undefined,
  notify: (message: string) => void,
  reload: () => void,
): HTMLElement {
  const days = (ms: number | undefined) => (ms === undefined ? "" : String(Math.round(ms / DAY_MS)));
  const lifetime = h("input", { type: "number", min: "1", disabled: !may("accounts.manage") });
  lifetime.value = days(policy?.maxLifetime ? Number(durationMs(policy.maxLifetime)) : undefined);
  const grace = h("input", { type: "number", min: "0", disabled: !may("accounts.manage") });
  grace.value = days(policy?.maxResetGracePeriod ? Number(durationMs(policy.maxResetGracePeriod)) : undefined);
  const scopes = h("textarea", { rows: "3", disabled: !may("accounts.manage") });
  scopes.value = (policy?.allowedScopes ?? []).join("\n");
  const problem = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { "aria-labelledby": "policy" },
    h("h2", { id: "policy" }, "Token policy"),
    field("Longest lifetime (days)", lifetime, "Empty: tokens may never expire."),
    field("Longest reset grace period (days)", grace, "Empty: only the server's limit."),
    field("Allowed scopes", scopes, "One per line. Empty: any scopes."),
    problem,
    may("accounts.manage") ? h("button", { type: "submit", class: "primary" }, "Save policy") : null,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const asMs = (text: string) => (text.trim() === "" ? undefined : durationFromMs(Number(text) * DAY_MS));
    try {
      await admin.setTokenPolicy({
        policy: {
          accountId: account.id,
          maxLifetime: asMs(lifetime.value),
          maxResetGracePeriod: asMs(grace.value),
          allowedScopes: scopes.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean),
          etag: policy?.etag ?? "",
        },
      });
      notify("Token policy saved.");
      reload();
    } catch (error) {
      problem.textContent = explain(error);
    }
  });
  return form;
}

// The console's shell: sign-in, the navigation, sign-out, and the live updates that keep an
// open list current. Pages live in their own modules.

import { ConnectError } from "@connectrpc/connect";
import { h, replace } from "./dom";
import { accountPage } from "./account";
import { forgetPrincipals } from "./directory";
import { auditPage } from "./audit";
import { leaksPage } from "./leaks";
import { principalsPage } from "./principals";
import { accountId, caller, explain, may, signIn, signOut, tokens, workIn } from "./session";
import { tokensPage } from "./tokens";

const app = document.getElementById("app") as HTMLElement;
const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
let stopWatching: AbortController | null = null;

function notify(message: string): void {
  status.textContent = message;
}

function showSignIn(problem = ""): void {
  const secret = h("input", {
    type: "password",
    id: "credential",
    // Not a password to save: browsers ignore "off" on password fields, not this.
    autocomplete: "one-time-code",
    spellcheck: "false",
    required: true,
  });
  const form = h(
    "form",
    { class: "sign-in" },
    h("h1", {}, "Token authority"),
    h("p", {}, "Sign in by pasting an API token. It is kept in this tab's memory only, and forgotten when you sign out or reload."),
    h("div", { class: "field" }, h("label", { for: "credential" }, "API token"), secret),
    problem ? h("p", { class: "error", role: "alert" }, problem) : null,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = secret.value;
    secret.value = "";
    try {
      await signIn(token);
      showConsole();
    } catch (error) {
      showSignIn(explain(error));
    }
  });
  replace(app, h("main", {}, form));
  secret.focus();
}

/** The pages, and the permission each needs (null: any signed-in caller). */
const PAGES: [name: string, needs: string | null][] = [
  ["Tokens", null],
  ["Principals", "principals.manage"],
  ["Account", null],
  ["Audit log", "audit.read"],
  ["Report a leak", "tokens.report_leaked"],
];

function showConsole(): void {
  const who = caller;
  if (!who) return showSignIn();
  const content = h("main", { id: "content", tabindex: "-1" });
  const leave = () => {
    stopWatching?.abort();
    stopWatching = null;
    signOut();
    // Who the account's principals are is the signed-out caller's knowledge, not the next's.
    forgetPrincipals();
    notify("");
    showSignIn();
  };
  const nav = h("nav", { class: "pages", "aria-label": "Pages" });
  const open = (name: string) => {
    stopWatching?.abort();
    stopWatching = null;
    notify("");
    for (const button of nav.querySelectorAll("button")) {
      if (button.textContent === name) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    switch (name) {
      case "Principals":
        return principalsPage(content, notify);
      case "Account":
        return accountPage(content, notify);
      case "Audit log":
        return auditPage(content);
      case "Report a leak":
        return leaksPage(content);
      default:
        return showTokens(content);
    }
  };
  for (const [name, needs] of PAGES) {
    if (needs === null || may(needs)) {
      nav.append(h("button", { type: "button", onclick: () => open(name) }, name));
    }
  }
  // Operators work in any account; the pages ask for the one chosen here.
  let accountSwitch: HTMLElement | null = null;
  if (who.operator) {
    const account = h("input", { type: "text", id: "work-in", placeholder: "your own", size: "26" });
    account.addEventListener("change", () => {
      workIn(account.value);
      open(nav.querySelector("[aria-current]")?.textContent ?? "Tokens");
    });
    accountSwitch = h("div", { class: "work-in" }, h("label", { for: "work-in" }, "Account"), account);
  }
  replace(
    app,
    h(
      "header",
      {},
      h("span", { class: "brand" }, "Token authority"),
      h("span", { class: "who" }, `${who.principal?.displayName ?? ""} · ${who.accountId}${who.operator ? " · operator" : ""}`),
      h("button", { type: "button", onclick: leave }, "Sign out"),
    ),
    nav,
    accountSwitch,
    status,
    content,
  );
  open("Tokens");
}

function showTokens(content: HTMLElement): void {
  if (!may("tokens.read")) {
    replace(
      content,
      h("h1", {}, "API tokens"),
      h("p", { class: "error", role: "alert" }, "Your token does not hold the tokens.read permission, so it cannot list tokens. Ask an administrator for it."),
    );
    return;
  }
  const reload = tokensPage(content, notify);
  follow(reload);
}

/**
 * Reloads the list whenever the authority reports a change (a revocation, a disabled owner,
 * a reset of the stream), so that an open page shows it within a second. Needs
 * `tokens.verify`; without it the list is current as of its last load.
 */
function follow(reload: () => void): void {
  stopWatching?.abort();
  if (!may("tokens.verify")) return;
  const controller = new AbortController();
  stopWatching = controller;
  void (async () => {
    while (!controller.signal.aborted) {
      try {
        // The account the page shows: an operator's own by default, not every account's.
        const watched = { startFromNow: true, accountId: accountId || (caller?.accountId ?? "") };
        for await (const message of tokens.watchRevocations(watched, { signal: controller.signal })) {
          if (message.message.case === "batch" || message.message.case === "reset") reload();
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        console.warn("the live updates stopped; retrying", ConnectError.from(error).code);
      }
      await new Promise((resume) => setTimeout(resume, 1000));
    }
  })();
}

showSignIn();

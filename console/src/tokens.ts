// The tokens page: the list with its filters and pages, "Generate token", and what can be
// done to a token from its row. What is offered follows the caller's permissions; the
// authority decides every call.

import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Principal, type Token, TokenState } from "./gen/tokenauthority/v1/resources_pb";
import { ListTokensRequestSchema } from "./gen/tokenauthority/v1/token_service_pb";
import { field, h, replace, tableHead } from "./dom";
import { DAY_MS, isolate, KIND_NAMES, STATE_NAMES, when } from "./format";
import { accountId, caller, explain, may, tokens } from "./session";
import { showSecret } from "./secret";
import { duplicateToken, editToken, resetToken, tokenHistory } from "./token_dialogs";
import { ask } from "./ask";
import { forgetPrincipals, principals } from "./directory";


/** What an action returns when the user changed their mind. */
const CANCELLED = Symbol("cancelled");

interface Filters {
  name: string;
  created: "" | "7d" | "30d" | "older";
  state: TokenState;
  owner: string;
  unusedDays: string;
  expiringDays: string;
  violatesPolicy: boolean;
}

const PAGE_SIZE = 25;

/** Renders the tokens page into `root`; returns a function that reloads its list. */
export function tokensPage(root: HTMLElement, notify: (message: string) => void): () => void {
  const filters: Filters = {
    name: "",
    created: "",
    state: TokenState.UNSPECIFIED,
    owner: "",
    unusedDays: "",
    expiringDays: "",
    violatesPolicy: false,
  };
  // Page tokens of the pages before the current one, to go back.
  let pages: string[] = [""];
  const list = h("div", { class: "list", "aria-live": "polite" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });

  const input = (props: Record<string, string>, onChange: (value: string) => void) => {
    const control = h("input", props);
    control.addEventListener("change", () => onChange(control.value));
    return control;
  };
  const select = (options: [string, string][], onChange: (value: string) => void) => {
    const control = h("select", {}, ...options.map(([value, text]) => h("option", { value }, text)));
    control.addEventListener("change", () => onChange(control.value));
    return control;
  };
  const refilter = () => {
    pages = [""];
    void load();
  };
  const violates = h("input", { type: "checkbox", id: "filter-policy" });
  violates.addEventListener("change", () => {
    filters.violatesPolicy = violates.checked;
    refilter();
  });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter tokens" },
    field("Name contains", input({ type: "search", name: "name" }, (v) => {
      filters.name = v;
      refilter();
    })),
    field(
      "Created",
      select(
        [
          ["", "any time"],
          ["7d", "in the last 7 days"],
          ["30d", "in the last 30 days"],
          ["older", "more than 30 days ago"],
        ],
        (v) => {
          filters.created = v as Filters["created"];
          refilter();
        },
      ),
    ),
    field(
      "State",
      select(
        [
          [String(TokenState.UNSPECIFIED), "any"],
          [String(TokenState.ACTIVE), "active"],
          [String(TokenState.DISABLED), "disabled"],
          [String(TokenState.REVOKED), "revoked"],
          [String(TokenState.EXPIRED), "expired"],
        ],
        (v) => {
          filters.state = Number(v) as TokenState;
          refilter();
        },
      ),
    ),
    field("Owner id", input({ type: "text", name: "owner", placeholder: "prn_…" }, (v) => {
      filters.owner = v.trim();
      refilter();
    })),
    field("Not used for (days)", input({ type: "number", min: "1", name: "unused" }, (v) => {
      filters.unusedDays = v;
      refilter();
    })),
    field("Expiring within (days)", input({ type: "number", min: "1", name: "expiring" }, (v) => {
      filters.expiringDays = v;
      refilter();
    })),
    h("div", { class: "field check" }, violates, h("label", { for: "filter-policy" }, "Breaks the account's token policy")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refilter();
  });

  const generate = may("tokens.create")
    ? h("button", { type: "button", class: "primary", onclick: () => void openGenerate(notify, () => void load()) }, "Generate token")
    : null;

  replace(root, h("h1", {}, "API tokens"), h("div", { class: "toolbar" }, generate), form, list, pager);

  // Answers can arrive out of order (a filter changed while a page was loading): only the
  // newest request's answer is shown.
  let newest = 0;

  /**
   * Reads the current page. `inPlace`: a change the authority reported (the live updates),
   * applied to the rows on the page without moving any, so that nothing shifts under the
   * pointer; otherwise the list is drawn again, and focus goes back to the action last used.
   */
  // The newest live update: an older one answered later is dropped.
  let newestLive = 0;

  async function load(inPlace = false): Promise<void> {
    // A live update does not supersede a load the user asked for: it is dropped if one
    // starts before it is answered.
    const asked = inPlace ? newest : ++newest;
    const live = inPlace ? ++newestLive : newestLive;
    const pageToken = pages[pages.length - 1] ?? "";
    const now = Date.now();
    const days = (text: string) => Number.parseInt(text, 10);
    const request = create(ListTokensRequestSchema, {
      accountId,
      pageSize: PAGE_SIZE,
      pageToken,
      nameContains: filters.name,
      state: filters.state,
      ownerId: filters.owner,
      violatesTokenPolicy: filters.violatesPolicy,
    });
    if (filters.created === "7d") request.createTimeAfter = timestampFromMs(now - 7 * DAY_MS);
    if (filters.created === "30d") request.createTimeAfter = timestampFromMs(now - 30 * DAY_MS);
    if (filters.created === "older") request.createTimeBefore = timestampFromMs(now - 30 * DAY_MS);
    if (days(filters.unusedDays) > 0) request.lastUseTimeBefore = timestampFromMs(now - days(filters.unusedDays) * DAY_MS);
    if (days(filters.expiringDays) > 0) request.expireTimeBefore = timestampFromMs(now + days(filters.expiringDays) * DAY_MS);
    try {
      const [answer, names] = await Promise.all([tokens.listTokens(request), principals()]);
      if (asked !== newest) return;
      const reload = () => void load();
      if (inPlace) {
        if (live !== newestLive) return;
        // A row shown that no longer matches (revoked under a State filter, deleted): the
        // list is drawn again, since that row would be wrong.
        const ids = new Set(answer.tokens.map((token) => token.id));
        const shownIds = [...list.querySelectorAll("tr[data-token-id]")].map((tr) => tr.getAttribute("data-token-id"));
        if (shownIds.some((id) => id !== null && !ids.has(id))) {
          void load();
          return;
        }
        // Each row shown whose token changed is drawn again where it is; none moves.
        for (const token of answer.tokens) {
          const shown = list.querySelector(`tr[data-token-id="${CSS.escape(token.id)}"]`);
          if (shown && shown.getAttribute("data-etag") !== token.etag) {
            shown.replaceWith(row(token, names, notify, reload));
          }
        }
        return;
      }
      replace(list, table(answer.tokens, names, notify, reload));
      restoreFocus(list);
      replace(
        pager,
        pages.length > 1
          ? h("button", { type: "button", onclick: () => { pages.pop(); void load(); } }, "Previous page")
          : null,
        answer.nextPageToken
          ? h("button", { type: "button", onclick: () => { pages.push(answer.nextPageToken); void load(); } }, "Next page")
          : null,
      );
    } catch (error) {
      // A live update that failed leaves the list as it is.
      if (asked !== newest || inPlace) return;
      replace(list, h("p", { class: "error", role: "alert" }, explain(error)));
      replace(pager);
    }
  }

  void load();
  return () => void load(true);
}

function table(
  items: Token[],
  names: Map<string, Principal>,
  notify: (message: string) => void,
  reload: () => void,
): HTMLElement {
  if (items.length === 0) return h("p", {}, "No tokens match.");
  return h(
    "table",
    {},
    tableHead(["Name", "Owner", "State", "Scopes", "Created", "Expires", "Last used", "Token", ""]),
    h(
      "tbody",
      {},
      ...items.map((token) => row(token, names, notify, reload)),
    ),
  );
}

/** One token's row; `data-etag` lets a live update see whether it changed. */
function row(
  token: Token,
  names: Map<string, Principal>,
  notify: (message: string) => void,
  reload: () => void,
): HTMLElement {
  return h(
    "tr",
    { "data-token-id": token.id, "data-etag": token.etag },
    h("td", {}, token.name),
    h("td", {}, names.get(token.ownerId)?.displayName ?? token.ownerId),
    h("td", { class: `state state-${STATE_NAMES[token.state]}` }, STATE_NAMES[token.state]),
    h("td", {}, token.scopes.length ? token.scopes.join(" ") : "all of its owner's"),
    h("td", {}, when(token.createTime)),
    h("td", {}, when(token.expireTime, "never")),
    h("td", {}, when(token.lastUseTime, "never")),
    h("td", {}, h("code", {}, token.displayHint)),
    h("td", {}, actions(token, notify, reload)),
  );
}

/** The action last used, so that focus goes back to it once the list is drawn again. */
let lastAction: { tokenId: string; label: string } | null = null;

function restoreFocus(list: HTMLElement): void {
  if (!lastAction) return;
  const { tokenId, label } = lastAction;
  lastAction = null;
  const shown = list.querySelector(`tr[data-token-id="${CSS.escape(tokenId)}"]`);
  const buttons = shown ? [...shown.querySelectorAll("button")] : [];
  const same = buttons.find((button) => button.textContent === label) ?? buttons[0];
  (same ?? list).focus();
}

/** The buttons for what the caller may do to `token` in its state. */
function actions(token: Token, notify: (message: string) => void, reload: () => void): HTMLElement {
  const remember = (label: string) => {
    lastAction = { tokenId: token.id, label };
  };
  const run = (label: string, call: () => Promise<unknown>, done: string) =>
    h("button", {
      type: "button",
      "aria-label": `${label} ${token.name}`,
      onclick: async () => {
        remember(label);
        try {
          if ((await call()) === CANCELLED) return;
          notify(done);
        } catch (error) {
          notify(explain(error));
        }
        reload();
      },
    }, label);
  const live = token.state === TokenState.ACTIVE || token.state === TokenState.DISABLED;
  const buttons: HTMLElement[] = [];
  const open = (label: string, show: () => void) =>
    h("button", {
      type: "button",
      "aria-label": `${label} ${token.name}`,
      onclick: () => {
        remember(label);
        show();
      },
    }, label);
  const then = (message: string) => {
    notify(message);
    reload();
  };
  if (may("tokens.update") && live) {
    buttons.push(open("Edit", () => editToken(token, then)));
    buttons.push(open("Reset", () => resetToken(token, then)));
  }
  if (may("tokens.update")) {
    buttons.push(open("Duplicate", () => duplicateToken(token, then)));
  }
  if (may("audit.read")) {
    buttons.push(open("History", () => tokenHistory(token)));
  }
  if (may("tokens.update") && token.state === TokenState.ACTIVE) {
    buttons.push(run("Disable", () => tokens.disableToken({ id: token.id }), `Disabled ${token.name}.`));
  }
  if (may("tokens.update") && token.state === TokenState.DISABLED) {
    buttons.push(run("Enable", () => tokens.enableToken({ id: token.id }), `Enabled ${token.name}.`));
  }
  if (may("tokens.update") && live) {
    buttons.push(
      run(
        "Revoke",
        async () => {
          const reason = await ask(
            `Revoke ${isolate(token.name)}? It stops working at once, for good; its record is kept.`,
            "Revoke",
            "Reason",
          );
          if (reason === null) return CANCELLED;
          return tokens.revokeToken({ id: token.id, reason });
        },
        `Revoked ${token.name}.`,
      ),
    );
  }
  if (may("tokens.delete")) {
    buttons.push(
      run(
        "Delete",
        async () => {
          const sure = await ask(
            `Delete ${isolate(token.name)}? Its record is removed; the audit log keeps the fact. Revoking keeps the record and is usually the better choice.`,
            "Delete",
          );
          if (sure === null) return CANCELLED;
          return tokens.deleteToken({ id: token.id });
        },
        `Deleted ${token.name}.`,
      ),
    );
  }
  return h("div", { class: "actions" }, ...buttons);
}

/** The "Generate token" dialog. */
async function openGenerate(notify: (message: string) => void, created: () => void): Promise<void> {
  // An operator working in another account generates for one of that account's principals:
  // "yourself" would make a token of the operator's own account.
  const account = accountId;
  const elsewhere = account !== "" && account !== caller?.accountId;
  // Read afresh: principals may have been added or changed since the page was drawn.
  forgetPrincipals();
  const known = await principals();
  if (accountId !== account) return; // The account changed meanwhile: the page is redrawn.
  if (elsewhere && known.size === 0) {
    // Without the list, an owner id typed in could be of any account (or empty: yourself).
    notify("To generate a token in another account, choose its owner among the account's principals: that needs the principals.manage permission.");
    return;
  }
  const name = h("input", { type: "text", required: true, maxlength: "200" });
  const description = h("textarea", { maxlength: "1000", rows: "2" });
  const scopes = h("fieldset", { class: "scopes" });
  // Scopes are chosen from what both you and the owner hold now.
  const offerScopes = (ownerPermissions: string[] | null) => {
    const mine = caller?.permissions ?? [];
    const offered = ownerPermissions === null ? mine : mine.filter((p) => ownerPermissions.includes(p));
    replace(
      scopes,
      h("legend", {}, "Scopes (none checked: everything its owner holds)"),
      ...offered.map((permission) =>
        h(
          "div",
          { class: "check" },
          h("input", { type: "checkbox", value: permission, id: `scope-${permission}` }),
          h("label", { for: `scope-${permission}` }, permission),
        ),
      ),
    );
  };
  // The owner: chosen among the account's principals when they can be listed (by name, kind
  // and id: names need not be unique), else typed as an id.
  let owner: HTMLInputElement | HTMLSelectElement;
  if (known.size > 0) {
    const select = h("select", { required: elsewhere });
    select.append(
      elsewhere ? h("option", { value: "" }, "choose a principal of this account") : h("option", { value: "" }, "yourself"),
    );
    for (const principal of known.values()) {
      if (principal.disabled || principal.id === caller?.principal?.id) continue;
      select.append(
        h("option", { value: principal.id }, `${isolate(principal.displayName)} (${KIND_NAMES[principal.kind]}, ${principal.id})`),
      );
    }
    select.addEventListener("change", () => offerScopes(select.value ? (known.get(select.value)?.permissions ?? []) : null));
    owner = select;
  } else {
    owner = h("input", { type: "text", required: elsewhere, placeholder: elsewhere ? "prn_… of this account" : "empty: yourself (prn_…)" });
  }
  offerScopes(elsewhere ? [] : null);
  const ownerField = field(known.size > 0 ? "Owner" : "Owner (principal id)", owner);
  const expiry = h(
    "select",
    {},
    h("option", { value: "30d" }, "30 days"),
    h("option", { value: "1y" }, "1 year"),
    h("option", { value: "never" }, "never"),
    h("option", { value: "date" }, "on a date"),
  );
  const date = h("input", { type: "date" });
  const labels = h("textarea", { rows: "2", placeholder: "team=payments, one per line" });
  const networks = h("textarea", { rows: "2", placeholder: "10.0.0.0/8, one per line; empty: anywhere" });
  const apiVersion = h("input", { type: "text", maxlength: "64" });
  const problem = h("p", { class: "error", role: "alert" });
  // Off while the authority answers: a double click must not make two tokens.
  const submit = h("button", { type: "submit", class: "primary" }, "Generate");
  const dialog = h("dialog", { "aria-labelledby": "generate-title" });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  const form = h(
    "form",
    {},
    h("h2", { id: "generate-title" }, "Generate token"),
    field("Name", name),
    field("Description", description),
    ownerField,
    scopes,
    field("Expires", expiry),
    field("Expiry date", date, "Used when Expires is “on a date”."),
    field("Labels", labels),
    field("Allowed networks", networks),
    field("API version", apiVersion),
    problem,
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "button", onclick: close }, "Cancel"),
      submit,
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // "On a date" without one must not quietly become "never".
    if (expiry.value === "date" && !date.valueAsDate) {
      problem.textContent = "Choose the expiry date, or another expiry.";
      date.focus();
      return;
    }
    const lines = (text: string) => text.split("\n").map((line) => line.trim()).filter(Boolean);
    const labelMap: Record<string, string> = {};
    for (const line of lines(labels.value)) {
      const [key, ...rest] = line.split("=");
      labelMap[(key ?? "").trim()] = rest.join("=").trim();
    }
    const chosen = [...scopes.querySelectorAll("input:checked")].map((box) => (box as HTMLInputElement).value);
    const request = {
      ownerId: owner.value.trim(),
      name: name.value,
      description: description.value,
      scopes: chosen,
      labels: labelMap,
      apiVersion: apiVersion.value.trim(),
      allowedNetworks: lines(networks.value),
      expiry:
        expiry.value === "30d"
          ? { case: "ttl" as const, value: durationFromMs(30 * DAY_MS) }
          : expiry.value === "1y"
            ? { case: "ttl" as const, value: durationFromMs(365 * DAY_MS) }
            : expiry.value === "date" && date.valueAsDate
              ? { case: "expireTime" as const, value: timestampFromDate(date.valueAsDate) }
              : { case: undefined },
    };
    submit.disabled = true;
    try {
      const answer = await tokens.createToken(request);
      close();
      created();
      showSecret(`Token ${answer.token?.name ?? ""} generated`, answer.secret);
      notify(`Generated ${answer.token?.name ?? "a token"}.`);
    } catch (error) {
      problem.textContent = explain(error);
      submit.disabled = false;
    }
  });
  // Escape closes it as Cancel does: nothing of it stays in the page.
  dialog.addEventListener("cancel", close);
  dialog.append(form);
  document.body.append(dialog);
  dialog.showModal();
  name.focus();
}

// The principals page: the account's users and service accounts, creating one, changing
// its permissions, disabling and enabling it. Requires principals.manage.

import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { type Principal, PrincipalKind } from "./gen/tokenauthority/v1/resources_pb";
import { field, h, replace, tableHead } from "./dom";
import { isolate, KIND_NAMES, when } from "./format";
import { ask } from "./ask";
import { accountId, admin, caller, explain } from "./session";
import { modal } from "./token_dialogs";
import { forgetPrincipals } from "./directory";


export function principalsPage(root: HTMLElement, notify: (message: string) => void): void {
  const list = h("div", { class: "list", "aria-live": "polite" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  let pages: string[] = [""];
  const then = (message: string) => {
    forgetPrincipals();
    notify(message);
    void load();
  };
  replace(
    root,
    h("h1", {}, "Principals"),
    h("p", {}, "People and service accounts of the account. A token never holds more than its principal does now."),
    h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", onclick: () => principalForm(null, then) }, "New principal")),
    list,
    pager,
  );

  async function load(): Promise<void> {
    try {
      const answer = await admin.listPrincipals({ accountId, pageSize: 50, pageToken: pages[pages.length - 1] ?? "" });
      replace(
        list,
        answer.principals.length === 0
          ? h("p", {}, "No principals.")
          : h(
              "table",
              {},
              tableHead(["Name", "Kind", "Id", "Permissions", "State", "Created", ""]),
              h("tbody", {}, ...answer.principals.map((principal) => row(principal, then))),
            ),
      );
      replace(
        pager,
        pages.length > 1 ? h("button", { type: "button", onclick: () => { pages.pop(); void load(); } }, "Previous page") : null,
        answer.nextPageToken ? h("button", { type: "button", onclick: () => { pages.push(answer.nextPageToken); void load(); } }, "Next page") : null,
      );
    } catch (error) {
      replace(list, h("p", { class: "error", role: "alert" }, explain(error)));
    }
  }
  pages = [""];
  void load();
}

function row(principal: Principal, then: (message: string) => void): HTMLElement {
  const own = principal.id === caller?.principal?.id;
  const toggle = async () => {
    if (
      !principal.disabled &&
      (await ask(
        `Disable ${isolate(principal.displayName)}? Every token of theirs stops working until they are enabled again.`,
        "Disable",
      )) === null
    ) {
      return;
    }
    try {
      await admin.updatePrincipal({
        principal: { id: principal.id, disabled: !principal.disabled, etag: principal.etag },
        updateMask: create(FieldMaskSchema, { paths: ["disabled"] }),
      });
      then(`${principal.disabled ? "Enabled" : "Disabled"} ${principal.displayName}.`);
    } catch (error) {
      then(explain(error));
    }
  };
  return h(
    "tr",
    { "data-principal-id": principal.id },
    h("td", {}, principal.displayName),
    h("td", {}, KIND_NAMES[principal.kind]),
    h("td", {}, h("code", {}, principal.id)),
    h("td", {}, principal.permissions.join(" ") || "none"),
    h("td", { class: "state" }, principal.disabled ? "disabled" : "active"),
    h("td", {}, when(principal.createTime)),
    h(
      "td",
      {},
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", "aria-label": `Edit ${principal.displayName}`, onclick: () => principalForm(principal, then) }, "Edit"),
        own
          ? null
          : h("button", { type: "button", "aria-label": `${principal.disabled ? "Enable" : "Disable"} ${principal.displayName}`, onclick: toggle }, principal.disabled ? "Enable" : "Disable"),
      ),
    ),
  );
}

/** Creates a principal (`existing` null) or changes one's name and permissions. */
function principalForm(existing: Principal | null, then: (message: string) => void): void {
  const name = h("input", { type: "text", required: true, maxlength: "200" });
  name.value = existing?.displayName ?? "";
  const kind = h(
    "select",
    { disabled: existing !== null },
    h("option", { value: String(PrincipalKind.SERVICE_ACCOUNT) }, "service account"),
    h("option", { value: String(PrincipalKind.USER) }, "person"),
  );
  if (existing) kind.value = String(existing.kind);
  const permissions = h("textarea", { rows: "4" });
  permissions.value = (existing?.permissions ?? []).join("\n");
  const problem = h("p", { class: "error", role: "alert" });
  let close = () => {};
  const form = h(
    "form",
    {},
    field("Name", name),
    field("Kind", kind),
    field("Permissions", permissions, "One per line, for example tokens.read. You can only give permissions you hold."),
    problem,
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "button", onclick: () => close() }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, existing ? "Save" : "Create"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = permissions.value.split(/[\s,]+/).map((p) => p.trim()).filter(Boolean);
    try {
      if (existing) {
        await admin.updatePrincipal({
          principal: { id: existing.id, displayName: name.value, permissions: chosen, etag: existing.etag },
          updateMask: create(FieldMaskSchema, { paths: ["display_name", "permissions"] }),
        });
      } else {
        await admin.createPrincipal({ accountId, displayName: name.value, kind: Number(kind.value), permissions: chosen });
      }
      close();
      then(`${existing ? "Saved" : "Created"} ${name.value}.`);
    } catch (error) {
      problem.textContent = explain(error);
    }
  });
  close = modal(existing ? `Edit ${existing.displayName}` : "New principal", form);
  name.focus();
}

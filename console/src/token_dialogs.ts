// What is done to one token in a dialog of its own: edit it, duplicate it, reset its secret
// (with an optional grace period), and read its audit trail.

import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import type { Token, TokenSchema } from "./gen/tokenauthority/v1/resources_pb";
import { field, h, replace } from "./dom";
import { when } from "./format";
import { accountId, admin, explain, tokens } from "./session";
import { showSecret } from "./secret";

/** A modal dialog titled `title` around `form`; returns a function that closes it. */
export function modal(title: string, form: HTMLFormElement): () => void {
  const id = `dialog-${Math.random().toString(36).slice(2)}`;
  const dialog = h("dialog", { "aria-labelledby": id });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  form.prepend(h("h2", { id }, title));
  dialog.addEventListener("cancel", close);
  dialog.append(form);
  document.body.append(dialog);
  dialog.showModal();
  return close;
}

function buttons(cancel: () => void, submit: string): HTMLElement {
  return h(
    "div",
    { class: "buttons" },
    h("button", { type: "button", onclick: cancel }, "Cancel"),
    h("button", { type: "submit", class: "primary" }, submit),
  );
}

/** Edits the fields UpdateToken changes; only those that changed are sent. */
export function editToken(token: Token, done: (message: string) => void): void {
  const name = h("input", { type: "text", required: true, maxlength: "200" });
  name.value = token.name;
  const description = h("textarea", { rows: "2", maxlength: "1000" });
  description.value = token.description;
  const labels = h("textarea", { rows: "3" });
  labels.value = Object.entries(token.labels)
    .map(([key, value]) => `${key}=${value}`)
    .join("\n");
  const apiVersion = h("input", { type: "text", maxlength: "64" });
  apiVersion.value = token.apiVersion;
  const expires = h("input", { type: "date" });
  const scopes = h("fieldset", { class: "scopes" }, h("legend", {}, "Scopes (uncheck to narrow; they cannot grow)"));
  for (const scope of token.scopes) {
    const box = h("input", { type: "checkbox", value: scope, id: `edit-${scope}`, checked: true });
    scopes.append(h("div", { class: "check" }, box, h("label", { for: `edit-${scope}` }, scope)));
  }
  const problem = h("p", { class: "error", role: "alert" });
  let close = () => {};
  const form = h(
    "form",
    {},
    field("Name", name),
    field("Description", description),
    field("Labels", labels, "key=value, one per line"),
    field("API version", apiVersion),
    field("New expiry date", expires, `Now: ${when(token.expireTime, "never")}. Empty: unchanged.`),
    token.scopes.length ? scopes : h("p", {}, "This token carries all of its owner's permissions."),
    problem,
    buttons(() => close(), "Save"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const paths: string[] = [];
    const changed: MessageInitShape<typeof TokenSchema> = { id: token.id, etag: token.etag };
    if (name.value !== token.name) {
      paths.push("name");
      changed.name = name.value;
    }
    if (description.value !== token.description) {
      paths.push("description");
      changed.description = description.value;
    }
    const newLabels: Record<string, string> = {};
    for (const line of labels.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const [key, ...rest] = line.split("=");
      newLabels[(key ?? "").trim()] = rest.join("=").trim();
    }
    if (JSON.stringify(newLabels) !== JSON.stringify(token.labels)) {
      paths.push("labels");
      changed.labels = newLabels;
    }
    if (apiVersion.value.trim() !== token.apiVersion) {
      paths.push("api_version");
      changed.apiVersion = apiVersion.value.trim();
    }
    if (expires.valueAsDate) {
      paths.push("expire_time");
      changed.expireTime = timestampFromDate(expires.valueAsDate);
    }
    const kept = [...scopes.querySelectorAll("input:checked")].map((box) => (box as HTMLInputElement).value);
    if (token.scopes.length && kept.length !== token.scopes.length) {
      if (kept.length === 0) {
        problem.textContent = "Keep at least one scope: a token without scopes has all its owner's.";
        return;
      }
      paths.push("scopes");
      changed.scopes = kept;
    }
    if (paths.length === 0) return close();
    try {
      await tokens.updateToken({
        token: changed,
        updateMask: create(FieldMaskSchema, { paths }),
      });
      close();
      done(`Saved ${name.value}.`);
    } catch (error) {
      problem.textContent = explain(error);
    }
  });
  close = modal(`Edit ${token.name}`, form);
  name.focus();
}

/** A new token with the same owner, scopes, labels and lifetime; its secret shown once. */
export function duplicateToken(token: Token, done: (message: string) => void): void {
  const name = h("input", { type: "text", required: true, maxlength: "200" });
  name.value = `${token.name} (copy)`.slice(0, 200);
  const problem = h("p", { class: "error", role: "alert" });
  let close = () => {};
  const form = h("form", {}, field("Name of the copy", name), problem, buttons(() => close(), "Duplicate"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await tokens.duplicateToken({ id: token.id, name: name.value });
      close();
      done(`Duplicated ${token.name}.`);
      showSecret(`Token ${answer.token?.name ?? ""} generated`, answer.secret);
    } catch (error) {
      problem.textContent = explain(error);
    }
  });
  close = modal(`Duplicate ${token.name}`, form);
}

/** A new secret for the token; the old one stops now or after a grace period. */
export function resetToken(token: Token, done: (message: string) => void): void {
  const grace = h(
    "select",
    {},
    h("option", { value: "0" }, "none: the old secret stops now"),
    h("option", { value: "3600000" }, "1 hour"),
    h("option", { value: "86400000" }, "1 day"),
    h("option", { value: "604800000" }, "7 days"),
  );
  const problem = h("p", { class: "error", role: "alert" });
  let close = () => {};
  const form = h(
    "form",
    {},
    h("p", {}, "The token keeps its id, name and scopes, and gets a new secret, shown once. Without a grace period the old secret stops working at once."),
    field("Grace period for the old secret", grace),
    problem,
    buttons(() => close(), "Reset"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ms = Number(grace.value);
    try {
      const answer = await tokens.resetToken({
        id: token.id,
        gracePeriod: ms > 0 ? durationFromMs(ms) : undefined,
        etag: token.etag,
      });
      close();
      done(`Reset ${token.name}.`);
      showSecret(`New secret for ${token.name}`, answer.secret);
    } catch (error) {
      problem.textContent = explain(error);
    }
  });
  close = modal(`Reset ${token.name}`, form);
}

/** The token's audit trail, newest first. */
export function tokenHistory(token: Token): void {
  const list = h("div", { "aria-live": "polite" }, "Loading…");
  let close = () => {};
  const form = h("form", {}, list, h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Close")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    close();
  });
  close = modal(`History of ${token.name}`, form);
  void (async () => {
    try {
      const answer = await admin.listAuditEvents({ targetId: token.id, accountId, pageSize: 100 });
      replace(
        list,
        answer.events.length === 0
          ? h("p", {}, "No events.")
          : h(
              "ol",
              { class: "history" },
              ...answer.events.map((event) =>
                h(
                  "li",
                  {},
                  h("strong", {}, event.action),
                  ` ${when(event.occurTime)} by ${event.actorId}`,
                  ...Object.entries(event.details).map(([key, value]) => h("div", { class: "detail" }, `${key}: ${value}`)),
                ),
              ),
            ),
      );
    } catch (error) {
      replace(list, h("p", { class: "error", role: "alert" }, explain(error)));
    }
  })();
}

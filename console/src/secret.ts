// A new secret, shown once. The dialog is the only place it is ever put; closing it removes
// the dialog from the page and drops the last reference the page holds.

import { h } from "./dom";

export function showSecret(title: string, secret: string): void {
  let shown: string | null = secret;
  // Set as the control's value, not as an attribute: it never appears in the page's markup.
  const value = h("input", { type: "text", readonly: true, class: "secret", "aria-label": "The new secret" });
  value.value = secret;
  const copied = h("span", { role: "status" });
  const dialog = h("dialog", { "aria-labelledby": "secret-title", class: "secret-dialog" });
  // Leaving the page would lose a secret not yet copied: the browser asks first.
  const warn = (event: BeforeUnloadEvent) => event.preventDefault();
  window.addEventListener("beforeunload", warn);
  const close = () => {
    window.removeEventListener("beforeunload", warn);
    shown = null;
    value.value = "";
    dialog.close();
    dialog.remove();
  };
  dialog.append(
    h("h2", { id: "secret-title" }, title),
    h(
      "p",
      { class: "warning" },
      "Copy this token now and keep it somewhere safe. It is shown only once: it cannot be shown again. Anyone who has it can call the API as its owner.",
    ),
    value,
    h(
      "div",
      { class: "buttons" },
      h("button", {
        type: "button",
        onclick: async () => {
          if (shown === null) return;
          try {
            await navigator.clipboard.writeText(shown);
            copied.textContent = "Copied.";
          } catch {
            value.select();
            copied.textContent = "Select the token and copy it.";
          }
        },
      }, "Copy"),
      copied,
      h("button", { type: "button", class: "primary", onclick: close }, "I have copied it"),
    ),
  );
  // Escape does not dismiss it: the secret cannot be shown again, so only the button that
  // says it was copied closes it. Browsers let a second Escape close a dialog whatever its
  // cancel handler says: then it is shown again.
  dialog.addEventListener("cancel", (event) => event.preventDefault());
  dialog.addEventListener("close", () => {
    if (shown !== null) dialog.showModal();
  });
  document.body.append(dialog);
  dialog.showModal();
  value.select();
}

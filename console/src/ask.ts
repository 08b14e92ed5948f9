// Asking the user before a change, in the page's own dialog (never window.prompt or
// window.confirm).

import { field, h } from "./dom";

/**
 * Shows `question` with a `confirm` button; with `input`, a text field labelled so. Resolves
 * to the text typed (empty without `input`), or null when cancelled.
 */
export function ask(question: string, confirm: string, input?: string): Promise<string | null> {
  return new Promise((resolve) => {
    const text = h("input", { type: "text", maxlength: "1000" });
    const dialog = h("dialog", { "aria-labelledby": "ask-title" });
    const finish = (answer: string | null) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const form = h(
      "form",
      {},
      h("h2", { id: "ask-title" }, question),
      input ? field(input, text) : null,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", onclick: () => finish(null) }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, confirm),
      ),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      finish(text.value);
    });
    dialog.addEventListener("cancel", () => finish(null));
    dialog.append(form);
    document.body.append(dialog);
    dialog.showModal();
  });
}

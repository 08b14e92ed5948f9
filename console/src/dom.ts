// Building the page's elements. Every string given here becomes a text node or an attribute
// value, never markup: names, labels, reasons and audit details typed by anyone are shown as
// the text they are (no innerHTML anywhere in the console).

export type Child = Node | string | number | null | undefined | false;

export interface Props {
  [attribute: string]: string | number | boolean | EventListener | undefined;
}

/** `<tag props…>children…</tag>`: attributes for values, listeners for `on…` functions. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      element.addEventListener(name.replace(/^on/, ""), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, ...children);
  return element;
}

/** Adds `children` to `parent`, strings as text. */
export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything in `parent` with `children`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

let ids = 0;

/** A labelled control: `<label for=id>text</label>` and the control itself. */
export function field(text: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id || `f${++ids}`;
  control.id = id;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, text),
    control,
    hint ? h("small", {}, hint) : null,
  );
}

/** A table's head: one row of column headers. */
export function tableHead(columns: string[]): HTMLElement {
  return h("thead", {}, h("tr", {}, ...columns.map((text) => h("th", { scope: "col" }, text))));
}

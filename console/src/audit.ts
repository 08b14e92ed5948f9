// The audit log, newest first, with its filters. Requires audit.read.

import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { field, h, replace, tableHead } from "./dom";
import { DAY_MS, when } from "./format";
import { accountId, admin, explain } from "./session";

export function auditPage(root: HTMLElement): void {
  const filters = { target: "", actor: "", action: "", days: "" };
  let pages: string[] = [""];
  const list = h("div", { class: "list", "aria-live": "polite" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const input = (label: string, key: keyof typeof filters, props: Record<string, string> = {}) => {
    const control = h("input", { type: "text", ...props });
    control.addEventListener("change", () => {
      filters[key] = control.value.trim();
      pages = [""];
      void load();
    });
    return field(label, control);
  };
  replace(
    root,
    h("h1", {}, "Audit log"),
    h(
      "form",
      { class: "filters", role: "search", "aria-label": "Filter events", onsubmit: (event: Event) => event.preventDefault() },
      input("Object id", "target", { placeholder: "tok_…, prn_…, acc_…" }),
      input("Actor id", "actor", { placeholder: "prn_…" }),
      input("Action", "action", { placeholder: "token.revoke" }),
      input("In the last (days)", "days", { type: "number", min: "1" }),
    ),
    list,
    pager,
  );
  let newest = 0;
  async function load(): Promise<void> {
    const asked = ++newest;
    const days = Number.parseInt(filters.days, 10);
    try {
      const answer = await admin.listAuditEvents({
        accountId,
        targetId: filters.target,
        actorId: filters.actor,
        action: filters.action,
        occurTimeAfter: days > 0 ? timestampFromMs(Date.now() - days * DAY_MS) : undefined,
        pageSize: 50,
        pageToken: pages[pages.length - 1] ?? "",
      });
      if (asked !== newest) return;
      replace(
        list,
        answer.events.length === 0
          ? h("p", {}, "No events match.")
          : h(
              "table",
              {},
              tableHead(["When", "Action", "Object", "Actor", "From", "Details"]),
              h(
                "tbody",
                {},
                ...answer.events.map((event) =>
                  h(
                    "tr",
                    {},
                    h("td", {}, when(event.occurTime)),
                    h("td", {}, event.action),
                    h("td", {}, h("code", {}, event.targetId)),
                    h("td", {}, h("code", {}, event.actorId)),
                    h("td", {}, event.peerAddress || "—"),
                    h("td", {}, ...Object.entries(event.details).map(([k, v]) => h("div", {}, `${k}: ${v}`))),
                  ),
                ),
              ),
            ),
      );
      replace(
        pager,
        pages.length > 1 ? h("button", { type: "button", onclick: () => { pages.pop(); void load(); } }, "Previous page") : null,
        answer.nextPageToken ? h("button", { type: "button", onclick: () => { pages.push(answer.nextPageToken); void load(); } }, "Next page") : null,
      );
    } catch (error) {
      if (asked !== newest) return;
      replace(list, h("p", { class: "error", role: "alert" }, explain(error)));
    }
  }
  void load();
}

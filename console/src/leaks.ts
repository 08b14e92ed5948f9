// Reporting leaked secrets: paste them, and see what became of each. Requires
// tokens.report_leaked. The secrets pasted are cleared from the form once reported.

import { LeakStatus } from "./gen/tokenauthority/v1/token_service_pb";
import { field, h, replace } from "./dom";
import { explain, tokens } from "./session";

const OUTCOMES: Record<LeakStatus, string> = {
  [LeakStatus.UNSPECIFIED]: "unknown",
  [LeakStatus.REVOKED]: "revoked now",
  [LeakStatus.ALREADY_INACTIVE]: "already unusable",
  [LeakStatus.NOT_FOUND]: "not a token of this authority",
  [LeakStatus.MALFORMED]: "not a token",
};

export function leaksPage(root: HTMLElement): void {
  const secrets = h("textarea", { rows: "5", autocomplete: "off", spellcheck: "false" });
  const source = h("input", { type: "text", required: true, maxlength: "100", placeholder: "github-secret-scanning" });
  const url = h("input", { type: "url", maxlength: "2000" });
  const results = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    {},
    h("h1", {}, "Report leaked tokens"),
    h("p", {}, "Paste secrets found where they should not be, one per line. Every token of this authority among them is revoked at once, whatever its account."),
    field("Leaked secrets", secrets),
    field("Where they were found", source),
    field("Link to the finding", url),
    h("button", { type: "submit", class: "primary" }, "Report and revoke"),
    results,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const pasted = secrets.value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (pasted.length === 0 || pasted.length > 100) {
      replace(results, h("p", { class: "error", role: "alert" }, "Paste 1 to 100 secrets, one per line."));
      return;
    }
    try {
      const answer = await tokens.reportLeakedTokens({ secrets: pasted, source: source.value, url: url.value });
      // Cleared once reported, not before: a refused report keeps what was pasted.
      secrets.value = "";
      // Each secret by its place in the list and its last four characters, never whole.
      replace(
        results,
        h(
          "ol",
          { class: "results" },
          ...answer.results.map((result, index) =>
            h(
              "li",
              {},
              `…${(pasted[index] ?? "").slice(-4)}: ${OUTCOMES[result.status]}`,
              result.tokenId ? ` (${result.tokenId})` : "",
            ),
          ),
        ),
      );
    } catch (error) {
      replace(results, h("p", { class: "error", role: "alert" }, explain(error)));
    }
  });
  replace(root, form);
}

// The principals of the account the pages work in, by id: to show owners by name and to
// offer them in "Generate token". Read only with principals.manage (which listing them
// needs); without it, owners are shown by id and a token is generated for yourself or an id.

import type { Principal } from "./gen/tokenauthority/v1/resources_pb";
import { accountId, admin, may } from "./session";

let cached: { account: string; principals: Promise<Map<string, Principal>> } | null = null;

/** The account's principals (at most the first 1,000), read once per account. */
export function principals(): Promise<Map<string, Principal>> {
  if (!may("principals.manage")) return Promise.resolve(new Map());
  if (cached?.account !== accountId) {
    cached = {
      account: accountId,
      principals: admin
        .listPrincipals({ accountId, pageSize: 1000 })
        .then((answer) => new Map(answer.principals.map((p) => [p.id, p])))
        .catch(() => {
          // Not remembered: the next call asks again.
          cached = null;
          return new Map<string, Principal>();
        }),
    };
  }
  return cached.principals;
}

/** Forgets what was read: a principal was created or changed. */
export function forgetPrincipals(): void {
  cached = null;
}

// Who is signed in, and the clients that call the authority for them. The pasted token lives
// in this module's memory only: never in storage, a cookie, the URL or the console. Signing
// out, or reloading the page, forgets it.

import { type Client, ConnectError, Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AdminService } from "./gen/tokenauthority/v1/admin_service_pb";
import { type GetCallerResponse, TokenService } from "./gen/tokenauthority/v1/token_service_pb";

let credential: string | null = null;

const authorize: Interceptor = (next) => async (request) => {
  if (credential !== null) request.header.set("authorization", `Bearer ${credential}`);
  return next(request);
};

// The page's own origin: the console serves gRPC-Web beside the page.
const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [authorize],
});

export const tokens: Client<typeof TokenService> = createClient(TokenService, transport);
export const admin: Client<typeof AdminService> = createClient(AdminService, transport);

export let caller: GetCallerResponse | null = null;

/**
 * The account the pages work in: empty for the caller's own. Operators may choose another;
 * for anyone else the authority refuses any but their own.
 */
export let accountId = "";

export function workIn(account: string): void {
  accountId = account.trim();
}

/**
 * Signs in with `token`: kept only if the authority accepts it. Whitespace (a token wrapped
 * by a terminal) and a leading `Bearer` are dropped; anything else that no token holds is
 * refused here, before it reaches a header, whose error could quote it.
 */
export async function signIn(token: string): Promise<GetCallerResponse> {
  const bare = token.trim().replace(/^bearer\s+/i, "").replace(/\s+/g, "");
  if (!/^[A-Za-z0-9_]+$/.test(bare)) {
    throw new ConnectError("that is not an API token: they are letters, digits and _ only", Code.InvalidArgument);
  }
  credential = bare;
  try {
    caller = await tokens.getCaller({});
    return caller;
  } catch (error) {
    credential = null;
    caller = null;
    throw error;
  }
}

export function signOut(): void {
  credential = null;
  caller = null;
  accountId = "";
}

/** Whether the signed-in credential holds `permission` now (as of sign-in). */
export function may(permission: string): boolean {
  return caller?.permissions.includes(permission) ?? false;
}

/**
 * A refusal or failure in plain words, for the page: the authority's message, or the
 * transport's (which carries the browser's own text; `signIn` refuses what no token holds,
 * so no header the page sets can make it quote a credential). An error of the page's own
 * code is not shown.
 */
export function explain(error: unknown): string {
  if (!(error instanceof ConnectError)) return "Something went wrong in the page: the authority gave no answer.";
  const failure = error;
  switch (failure.code) {
    case Code.PermissionDenied:
      return `Not allowed: ${failure.rawMessage}`;
    case Code.Unauthenticated:
      return `Your token is no longer accepted (${failure.rawMessage}). Sign in again.`;
    case Code.NotFound:
      return `Not found: ${failure.rawMessage}`;
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.Aborted:
    case Code.AlreadyExists:
    case Code.ResourceExhausted:
      return failure.rawMessage;
    default:
      return `The authority could not answer (${failure.rawMessage}).`;
  }
}

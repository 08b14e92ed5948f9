// How values read on the page.

import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { PrincipalKind, TokenState } from "./gen/tokenauthority/v1/resources_pb";

export function when(timestamp: Timestamp | undefined, none = "—"): string {
  if (!timestamp) return none;
  return timestampDate(timestamp).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export const STATE_NAMES: Record<TokenState, string> = {
  [TokenState.UNSPECIFIED]: "unknown",
  [TokenState.ACTIVE]: "active",
  [TokenState.DISABLED]: "disabled",
  [TokenState.REVOKED]: "revoked",
  [TokenState.EXPIRED]: "expired",
};

export const DAY_MS = 24 * 3600 * 1000;

export const KIND_NAMES: Record<PrincipalKind, string> = {
  [PrincipalKind.UNSPECIFIED]: "principal",
  [PrincipalKind.USER]: "person",
  [PrincipalKind.SERVICE_ACCOUNT]: "service account",
};

/**
 * `text` isolated from the sentence around it (Unicode's first-strong isolate), so that a
 * name written right-to-left, or holding direction overrides, cannot reorder the question
 * it is quoted in.
 */
export function isolate(text: string): string {
  return `\u2068${text}\u2069`;
}

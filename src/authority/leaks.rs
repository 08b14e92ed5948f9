//! ReportLeakedTokens: revoking tokens by presenting their secrets, for secret scanners and
//! incident responders who found a secret but know nothing of its token, owner or account.
//!
//! Holding a secret is the proof: every live secret presented is revoked, in whichever
//! account (revoking only takes power away, and whoever holds the secret could use it
//! anyway). Visibility follows the usual rule in both directions: the reporter learns a
//! token's id and account only when it may see that account, and a token's account learns
//! who reported it only when the reporter is of that account or an operator.

use std::collections::BTreeMap;
use std::fmt;

use super::cold_lookups::Pool;
use super::token_changes::TokenChange;
use super::{Authority, AuthorityError, AuthorityResult, Caller, Committed};
use crate::domain::{
    AccountId, AuditAction, InvalidationKind, LeakReportId, LeakSource, LeakUrl,
    MAX_LEAKED_SECRETS, Permission, RevokeReason, TokenId, TokenSecret,
};

/// The revoke reason of a token reported from another account (see
/// [`Authority::leak_reason`]).
pub const FOREIGN_REPORT_REASON: &str =
    "leaked: reported by a principal of another account (a secret scanner or incident responder)";

/// How often a revoke that lost a race with a concurrent change of the same token is tried
/// again (each try reads the token afresh).
const CONFLICT_ATTEMPTS: usize = 3;

/// A validated ReportLeakedTokens request.
pub struct LeakReport {
    /// 1 to [`MAX_LEAKED_SECRETS`] secrets, as found.
    secrets: Vec<String>,
    source: LeakSource,
    url: LeakUrl,
}

impl LeakReport {
    pub fn new(secrets: Vec<String>, source: LeakSource, url: LeakUrl) -> AuthorityResult<Self> {
        if secrets.is_empty() || secrets.len() > MAX_LEAKED_SECRETS {
            return Err(AuthorityError::invalid(
                "secrets",
                format!("must hold 1 to {MAX_LEAKED_SECRETS} secrets"),
            ));
        }
        // Both are stored for the record, in the tokens' accounts too: never a secret (a URL
        // such as `…?token=tka_…` would put one in the audit log).
        for (text, field) in [(source.as_str(), "source"), (url.as_str(), "url")] {
            if TokenSecret::appears_in(text) {
                return Err(AuthorityError::invalid(
                    field,
                    "must not contain a token: it would be stored in plain text",
                ));
            }
        }
        Ok(Self {
            secrets,
            source,
            url,
        })
    }
}

/// Never prints the secrets.
impl fmt::Debug for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeakReport")
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("source", &self.source)
            .field("url", &self.url)
            .finish()
    }
}

/// What became of one reported secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakStatus {
    /// It was issued for a token that is not revoked (whether the secret still opens it,
    /// or a reset has replaced it since): the token is revoked now.
    Revoked,
    /// Its token was already revoked: nothing could use it any more.
    AlreadyInactive,
    /// Well formed, but no token has it (never issued, or deleted).
    NotFound,
    /// Not a token of ours: wrong shape or checksum.
    Malformed,
}

/// The answer for one reported secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakOutcome {
    pub status: LeakStatus,
    /// The token and its account: only when the caller may see that account.
    pub token: Option<(TokenId, AccountId)>,
}

impl LeakOutcome {
    fn unknown(status: LeakStatus) -> Self {
        Self {
            status,
            token: None,
        }
    }
}

impl Authority {
    /// Revokes the token of every live secret in `report` and answers for each, in order.
    /// The revision is the last revoke's (the current one when nothing was revoked).
    ///
    /// Secrets are handled one by one, each revoke committed on its own: when the store
    /// fails midway, those before stay revoked and a retry of the whole report answers
    /// `AlreadyInactive` for them.
    pub async fn report_leaked_tokens(
        &self,
        caller: &Caller,
        report: LeakReport,
    ) -> AuthorityResult<Committed<Vec<LeakOutcome>>> {
        caller.require(Permission::TOKENS_REPORT_LEAKED)?;
        let id = LeakReportId::generate();
        // First, so that no revoke (committed one by one) is ever without its reporter on
        // record, even if the call fails or is cancelled midway.
        self.store
            .record_audit(&self.report_record(caller, &id, &report))
            .await?;
        tracing::warn!(
            report_id = %id,
            reporter_id = %caller.principal_id(),
            reporter_token_id = %caller.token_id(),
            source = report.source.as_str(),
            secrets = report.secrets.len(),
            "leaked secrets reported"
        );
        let mut outcomes = Vec::with_capacity(report.secrets.len());
        // Every state an answer was read from, and every revoke, is at or before this.
        let mut revision = self.revision();
        for presented in &report.secrets {
            let (outcome, seen) = self.report_one(caller, &id, presented, &report).await?;
            revision = revision.max(seen);
            outcomes.push(outcome);
        }
        Ok(Committed {
            value: outcomes,
            revision,
        })
    }

    /// One secret of report `id`: its outcome, and the revision the outcome holds at (its
    /// revoke's, or the state it was read from).
    async fn report_one(
        &self,
        caller: &Caller,
        id: &LeakReportId,
        presented: &str,
        report: &LeakReport,
    ) -> AuthorityResult<(LeakOutcome, u64)> {
        let Ok(hash) = TokenSecret::hash_presented(presented) else {
            return Ok((LeakOutcome::unknown(LeakStatus::Malformed), 0));
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Read from the store, not the cache: the answer must be the current state. A
            // secret replaced by a reset still names its token: whoever held it could have
            // reset the token to a secret of their own before the report arrived.
            let found = {
                // Within the cold look-ups' bound, like VerifyToken's tokens.
                let _slot = self.cold.slot(Pool::Verification).await?;
                self.store.issued_secret_token(&hash).await?
            };
            let Some(token_id) = found else {
                return Ok((LeakOutcome::unknown(LeakStatus::NotFound), 0));
            };
            // Read before the token: the token is at least as new as this revision.
            let read_at = self.store.revision().await?;
            let Some(mut token) = self.store.token(&token_id).await? else {
                return Ok((LeakOutcome::unknown(LeakStatus::NotFound), read_at));
            };
            let visible = caller.can_access(&token.account_id);
            let named = visible.then(|| (token_id.clone(), token.account_id.clone()));
            let outcome = |status| LeakOutcome {
                status,
                token: named.clone(),
            };
            let at = self.now();
            // Whatever became of the secret since (a reset, a grace period that ended), the
            // token it was issued for is revoked: its other secrets are most likely where
            // this one leaked, or in the hands of whoever found it.
            let reason = RevokeReason::parse(&Self::leak_reason(visible, report), "source")?;
            let revoker = visible.then(|| caller.principal_id().clone());
            if token.revoke(revoker, reason, at).is_err() {
                return Ok((outcome(LeakStatus::AlreadyInactive), read_at));
            }
            let change = TokenChange {
                details: Self::leak_details(visible, id, report),
                conceal_actor: !visible,
                ..TokenChange::new(
                    AuditAction::TokenRevoke,
                    Some(InvalidationKind::TokenRevoked),
                )
            };
            match self.commit_token(caller, token, change, at).await {
                Ok(committed) => {
                    tracing::warn!(
                        report_id = %id,
                        token_id = %token_id,
                        "token revoked: its secret was reported leaked"
                    );
                    return Ok((outcome(LeakStatus::Revoked), committed.revision));
                }
                // A concurrent change of the same token won: read it again.
                Err(AuthorityError::Aborted(_)) if attempts < CONFLICT_ATTEMPTS => continue,
                // Deleted meanwhile: nothing left to revoke.
                Err(AuthorityError::NotFound(_)) => {
                    return Ok((LeakOutcome::unknown(LeakStatus::NotFound), read_at));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The revoke reason of a reported token. A reporter the token's account may not see
    /// (of another account, not an operator) puts none of its own words in that account's
    /// records: they could carry a phishing message ("call … to restore").
    fn leak_reason(visible: bool, report: &LeakReport) -> String {
        if visible {
            format!("leaked: reported by {}", report.source.as_str())
        } else {
            FOREIGN_REPORT_REASON.to_owned()
        }
    }

    /// The details of a reported token's revoke record: the report's id always; its source
    /// and url only when the reporter is visible to the token's account (see
    /// [`Authority::leak_reason`]).
    fn leak_details(
        visible: bool,
        id: &LeakReportId,
        report: &LeakReport,
    ) -> BTreeMap<String, String> {
        let mut details = BTreeMap::new();
        details.insert("leak_report_id".to_owned(), id.to_string());
        if visible {
            details.insert("leak_source".to_owned(), report.source.as_str().to_owned());
            if !report.url.as_str().is_empty() {
                details.insert("leak_url".to_owned(), report.url.as_str().to_owned());
            }
        } else {
            details.insert(
                "reporter".to_owned(),
                "a principal of another account".to_owned(),
            );
        }
        details
    }

    /// The reporter's own audit record of report `id`: its source, url and size, and no
    /// token (some may be of accounts it may not see).
    fn report_record(
        &self,
        caller: &Caller,
        id: &LeakReportId,
        report: &LeakReport,
    ) -> crate::domain::AuditRecord {
        let mut record = Self::audit(
            caller,
            AuditAction::TokenReportLeak,
            id.as_str(),
            caller.account_id(),
            self.now(),
        );
        record
            .details
            .insert("source".to_owned(), report.source.as_str().to_owned());
        if !report.url.as_str().is_empty() {
            record
                .details
                .insert("url".to_owned(), report.url.as_str().to_owned());
        }
        record
            .details
            .insert("secrets".to_owned(), report.secrets.len().to_string());
        record
    }
}

//! The gateway decisions' metrics, in the server's style. The cache's own series (hits,
//! staleness, reconnects) are the client library's (`token_authority_client_*`), which the
//! edge runs on.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

use super::decision::{Decision, Outcome};

/// Gateway decisions, by `result` (`allowed`, `public`, or the refusal: `invalid_token`,
/// `insufficient_scope`, `no_credential`, `no_route`, `bad_path`, `ambiguous`,
/// `forged_identity`, `unavailable`, `too_many_invalid_tokens`) and
/// `route` (the rules file's route name; `-` when none applies).
pub const DECISIONS: &str = "token_authority_gateway_decisions_total";
/// Time to decide, from the gateway's question to the answer.
pub const DECISION_SECONDS: &str = "token_authority_gateway_decision_seconds";

/// Describes the series to the installed recorder.
pub fn describe() {
    describe_counter!(DECISIONS, "Gateway decisions, by result and route.");
    describe_histogram!(
        DECISION_SECONDS,
        Unit::Seconds,
        "Time to decide on a gateway's request."
    );
}

/// Records one decision and how long it took.
pub fn record(decision: &Decision, took: Duration) {
    let result = match &decision.outcome {
        Outcome::Allow(Some(_)) => "allowed",
        Outcome::Allow(None) => "public",
        Outcome::Refuse(refusal) => refusal.label(),
    };
    counter!(DECISIONS, "result" => result, "route" => decision.route.clone()).increment(1);
    histogram!(DECISION_SECONDS).record(took.as_secs_f64());
}

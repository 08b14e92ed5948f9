//! What the standard health service (`grpc.health.v1.Health`) reports, until shutdown
//! begins (then everything is NOT_SERVING):
//!
//! - `tokenauthority.v1.TokenService` and `AdminService`: NOT_SERVING while the database is
//!   unreachable (their writes and cold reads fail);
//! - `""`, the whole server, as load balancers and Kubernetes' gRPC probes ask by default:
//!   SERVING as long as verifications are answered, which during a database outage is while
//!   warm answers are still trusted (`--max-event-lag`). Every replica shares the database,
//!   so taking them all out of rotation at once would turn a degraded service (cached
//!   verifications work, writes fail) into no service at all.

use std::sync::Arc;
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthReporter;

use crate::authority::Authority;

/// The services whose health follows the database's.
const SERVICES: [&str; 2] = [
    "tokenauthority.v1.TokenService",
    "tokenauthority.v1.AdminService",
];

/// How often the database is checked.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What changes the health service's answers. Shutdown and the database probe take turns
/// (one lock), so that once shutdown has reported NOT_SERVING the probe, which then finds
/// the authority stopping, can never report SERVING again.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// The health service, everything SERVING, and what changes its answers.
pub async fn service() -> (
    Health,
    HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, service) = tonic_health::server::health_reporter();
    for name in SERVICES {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let health = Health {
        reporter,
        turn: Arc::default(),
    };
    (health, service)
}

/// Reports NOT_SERVING for everything, for good: the server is shutting down (the authority
/// has been told to stop first).
pub async fn report_stopping(health: &Health) {
    let _turn = health.turn.lock().await;
    for name in SERVICES.into_iter().chain([""]) {
        health
            .reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
        crate::metrics::record_health(name, false);
    }
}

/// Follows the database's health every second until the authority stops (see the module
/// documentation for what is reported).
pub async fn follow_database(authority: Arc<Authority>, health: Health) {
    // (services, server) as last reported.
    let mut reported = (true, true);
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let probe = tokio::time::timeout(PROBE_INTERVAL, authority.store_revision());
        let revision = probe.await.ok().and_then(Result::ok);
        crate::metrics::record_database_probe(revision);
        let reachable = revision.is_some();
        // Checked under the turn, and held while reporting: see [`Health`].
        let _turn = health.turn.lock().await;
        if authority.is_stopping() {
            return;
        }
        let now = (reachable, reachable || authority.cache_trusted());
        for name in SERVICES {
            crate::metrics::record_health(name, now.0);
        }
        crate::metrics::record_health("", now.1);
        if now == reported {
            continue;
        }
        if now.0 != reported.0 {
            if reachable {
                tracing::info!("database reachable again: serving");
            } else {
                tracing::warn!(
                    "database unreachable: the services report NOT_SERVING; warm verifications continue"
                );
            }
            for name in SERVICES {
                health
                    .reporter
                    .set_service_status(name, serving(now.0))
                    .await;
            }
        }
        if now.1 != reported.1 {
            if !now.1 {
                tracing::warn!(
                    "cached answers are no longer trusted: the server reports NOT_SERVING"
                );
            }
            health.reporter.set_service_status("", serving(now.1)).await;
        }
        reported = now;
    }
}

fn serving(up: bool) -> ServingStatus {
    if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

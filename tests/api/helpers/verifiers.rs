//! Watching the client library from a test: waiting until a verifier has heard a revision,
//! and reading the metrics it recorded.

use std::time::{Duration, Instant};

use token_authority::client::CachingVerifier;

/// How long a verifier is given to hear what a test waits for.
const WAIT: Duration = Duration::from_secs(10);

/// Waits until the verifier's stream is connected and has delivered `revision`.
pub async fn heard(verifier: &CachingVerifier, revision: u64) {
    let deadline = Instant::now() + WAIT;
    while !(verifier.is_fresh() && verifier.revision() >= revision) {
        assert!(
            Instant::now() < deadline,
            "the verifier never heard revision {revision} (at {})",
            verifier.revision()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The value of the sample named `name` with the label pair `label`, if any, in a scrape of
/// `recorder` (0 when absent).
pub fn sample(
    recorder: &metrics_exporter_prometheus::PrometheusRecorder,
    name: &str,
    label: Option<(&str, &str)>,
) -> f64 {
    let exposition = recorder.handle().render();
    let lines = exposition.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        })
        .sum()
}

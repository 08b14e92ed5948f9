//! Logging with `tracing`: human-readable or JSON lines, filtered by an EnvFilter directive.
//! Nothing in this crate logs a plaintext token; ids and display hints are safe to log.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::configuration::LogFormat;

/// A subscriber writing to `sink`, with colours only when `ansi` (a terminal). Kept separate
/// from installing it so that tests can capture the logs.
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    sink: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_ansi(ansi && format == LogFormat::Human);
    match format {
        LogFormat::Human => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

/// Installs `subscriber` as the global default; only the first call has an effect.
pub fn init(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

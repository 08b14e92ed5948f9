//! The server's logs, captured for every in-process server of the test binary at trace level
//! for this crate, so that a test can prove a secret never shows in them.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use token_authority::configuration::LogFormat;
use token_authority::telemetry;

/// Everything the server logged, across all tests of this binary (captured at debug level
/// and finer for this crate, so that a leaked secret would show).
pub fn captured_logs() -> String {
    let buffer = log_buffer().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buffer).into_owned()
}

pub(super) fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let filter =
            "token_authority=trace,sqlx=debug,tonic=debug,h2=debug,hyper=debug,tower=debug,info";
        let sink = move || LogSink(sink.clone());
        telemetry::init(telemetry::subscriber(LogFormat::Json, filter, sink, false));
        buffer
    })
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

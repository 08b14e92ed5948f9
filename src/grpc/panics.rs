//! Panics in request handlers. No input should reach one, but if a bug lets it, the caller
//! gets a plain `INTERNAL` (not a reset stream) and the log gets the location and the RPC,
//! never the panic message: a message may quote request data, such as a presented token.

use std::any::Any;
use std::sync::Once;

use tower_http::catch_panic::CatchPanicLayer;

/// The span every request runs in (see `startup.rs`); the hook recognises requests by it.
/// It is an ERROR-level span so that it exists under any log filter but `off`: a disabled
/// span would make a request's panic look like a background one.
pub const REQUEST_SPAN: &str = "grpc";

/// What answers a caught panic.
type PanicResponse = fn(Box<dyn Any + Send>) -> http::Response<tonic::body::Body>;

/// The layer that turns a panicking handler into an `INTERNAL` answer without details.
pub fn catch_panic_layer() -> CatchPanicLayer<PanicResponse> {
    CatchPanicLayer::custom(internal_error as fn(_) -> _)
}

fn internal_error(_payload: Box<dyn Any + Send>) -> http::Response<tonic::body::Body> {
    tonic::Status::internal("internal error").into_http()
}

/// Installs (once per process) a panic hook that logs a panic inside a request as an error
/// with its location, the request's span (the RPC method) and nothing of the payload.
/// Panics outside requests go to the previous hook, so that background tasks and test
/// assertions keep their messages.
pub fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_request = tracing::Span::current()
                .metadata()
                .is_some_and(|span| span.name() == REQUEST_SPAN);
            if !in_request {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(
                %location,
                "a request handler panicked; answered INTERNAL (the panic message is not logged: it may contain request data)"
            );
        }));
    });
}

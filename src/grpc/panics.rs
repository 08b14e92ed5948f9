//! Panics in request handlers. No input should reach one, but if a bug lets it, the caller
//! gets a plain `INTERNAL` (not a reset stream) and the log gets the location and the RPC,
//! never the panic message: a message may quote request data, such as a presented token.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use futures_util::Stream;

use tower_http::catch_panic::CatchPanicLayer;

/// The span every request runs in (see `grpc/server.rs`); the hook recognises requests by it.
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

/// A streaming response, polled in the request's span and with panics caught. hyper polls a
/// streaming body outside the handler, where neither the catch-panic layer nor the request
/// span reach: without this, a panic there would reset the stream and be logged with its
/// message. A panic ends the stream with `INTERNAL`, logged like a handler's.
pub struct GuardedStream<S> {
    span: tracing::Span,
    /// None once a poll panicked.
    inner: Option<Pin<Box<S>>>,
}

/// Guards `stream` (see [`GuardedStream`]); call it inside the handler, in its span.
pub fn guard_stream<S>(stream: S) -> GuardedStream<S> {
    GuardedStream {
        span: tracing::Span::current(),
        inner: Some(Box::pin(stream)),
    }
}

impl<S, T> Stream for GuardedStream<S>
where
    S: Stream<Item = Result<T, tonic::Status>>,
{
    type Item = Result<T, tonic::Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Unpin: the inner stream is boxed.
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let _entered = this.span.enter();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll_next(cx))) {
            Ok(poll) => poll,
            Err(_payload) => {
                this.inner = None;
                Poll::Ready(Some(Err(tonic::Status::internal("internal error"))))
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_stream_ends_with_internal() {
        let mut polls = 0;
        let stream = futures_util::stream::poll_fn(move |_| {
            polls += 1;
            if polls > 1 {
                panic!("a payload that must not be logged");
            }
            Poll::Ready(Some(Ok::<u32, tonic::Status>(polls)))
        });
        let items: Vec<_> = guard_stream(stream).collect().await;
        assert_eq!(items.len(), 2, "the item, then the error, then the end");
        assert_eq!(items[0].as_ref().ok(), Some(&1));
        let status = items[1].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}

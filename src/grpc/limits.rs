//! Requests over `--max-message-bytes`: tonic refuses them with `OUT_OF_RANGE`, but gRPC's
//! status-code table (and clients' retry policies) expect `RESOURCE_EXHAUSTED` for a message
//! larger than the receiver accepts, so the answer is rewritten here.

use http::HeaderValue;
use tower::util::MapResponseLayer;

/// gRPC's numeric codes, as they appear in the `grpc-status` header.
const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: HeaderValue = HeaderValue::from_static("8");

/// The layer that answers over-limit requests with `RESOURCE_EXHAUSTED`. No handler of ours
/// answers `OUT_OF_RANGE`, so every such answer in the response headers (a refused request
/// is answered "trailers-only") is tonic's size check.
pub fn resource_exhausted_layer<B>() -> MapResponseLayer<fn(http::Response<B>) -> http::Response<B>>
{
    MapResponseLayer::new(rewrite as fn(_) -> _)
}

fn rewrite<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    if headers
        .get("grpc-status")
        .is_some_and(|status| status == OUT_OF_RANGE)
    {
        headers.insert("grpc-status", RESOURCE_EXHAUSTED);
    }
    response
}

//! The console's page: built from the TypeScript in `console/` (`npm run build`, which
//! `scripts/test` checks reproduces the committed `console/dist/`) and embedded in the binary
//! at compile time, so that the server serves it without Node. Every answer of the listener
//! carries [`SECURITY_HEADERS`].

use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::CONTENT_TYPE;

/// One file of the page.
pub struct Asset {
    /// Where it is served.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The page's files.
pub const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/dist/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/dist/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/dist/app.css"),
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../console/dist/favicon.svg"),
    },
];

/// What the browser is told on every answer: run only this origin's own script and style
/// files (no inline script or style, no `eval`), call only this origin, never be framed,
/// never sniff a type, send no referrer, keep nothing in a cache (a page that showed a secret
/// must not be read back from one), and share no window with another origin.
pub const SECURITY_HEADERS: [(&str, &str); 7] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// `router` with the page's files added.
pub fn add_to(router: axum::Router) -> axum::Router {
    ASSETS.iter().fold(router, |router, asset| {
        let (content_type, body) = (asset.content_type, asset.body);
        router.route(
            asset.path,
            axum::routing::get(move || async move {
                (
                    [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
                    body,
                )
                    .into_response()
            }),
        )
    })
}

/// `response` with [`SECURITY_HEADERS`].
pub fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

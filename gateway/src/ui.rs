//! The web client: static pages embedded in the binary (no CDN, no build step).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../ui/index.html")),
    ("room.html", "text/html; charset=utf-8", include_str!("../ui/room.html")),
    ("rewatch.html", "text/html; charset=utf-8", include_str!("../ui/rewatch.html")),
    ("app.css", "text/css; charset=utf-8", include_str!("../ui/app.css")),
    ("lobby.js", "text/javascript; charset=utf-8", include_str!("../ui/lobby.js")),
    ("account.js", "text/javascript; charset=utf-8", include_str!("../ui/account.js")),
    ("messages.js", "text/javascript; charset=utf-8", include_str!("../ui/messages.js")),
    ("room.js", "text/javascript; charset=utf-8", include_str!("../ui/room.js")),
    ("player.js", "text/javascript; charset=utf-8", include_str!("../ui/player.js")),
    ("rewatch.js", "text/javascript; charset=utf-8", include_str!("../ui/rewatch.js")),
    ("icon.svg", "image/svg+xml", include_str!("../ui/icon.svg")),
    ("docs.js", "text/javascript; charset=utf-8", include_str!("../ui/docs.js")),
    (
        "redoc.standalone.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/vendor/redoc.standalone.js"),
    ),
];

/// What the pages may load: their own assets, and media from anywhere (rooms play URLs).
const PAGE_POLICY: &str = "default-src 'self'; img-src * data:; media-src *; connect-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'";

/// The API reference: Redoc styles itself inline and searches in a worker made from a blob.
const DOCS_POLICY: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'";

/// `/api/docs`: the API reference page.
pub fn docs_page() -> Response {
    page(include_str!("../ui/docs.html"), "text/html; charset=utf-8", DOCS_POLICY)
}

fn page(body: &'static str, content_type: &'static str, policy: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, policy),
        ],
        body,
    )
        .into_response()
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => page(body, content_type, PAGE_POLICY),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/r/{id}/rewatch`: the rewatch page, with the status its room's history answers (200, or the
/// 403 or 404 the page then explains).
pub fn rewatch_page(status: StatusCode) -> Response {
    let mut response = asset("rewatch.html");
    *response.status_mut() = status;
    response
}

/// `/` (the lobby), `/r/{id}` (a room), `/ui/{file}` (their assets) and `/favicon.ico` (the
/// icon, as SVG, for clients that ask for it without reading the pages' `<link rel="icon">`).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route("/favicon.ico", get(|| async { asset("icon.svg") }))
        .route("/r/{id}", get(|_: Path<String>| async { asset("room.html") }))
        .route("/ui/{file}", get(|Path(file): Path<String>| async move { asset(&file) }))
}

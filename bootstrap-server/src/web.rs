//! The browser page, embedded in the binary at compile time and served at `/` while
//! [`Config::web_page`](crate::Config::web_page) is on (the default).
//!
//! | path | what |
//! |---|---|
//! | `/` | `web/index.html`, or a page saying how to build the bundle if it is not embedded |
//! | `/app.js` | `web/app.js` |
//! | `/pkg/mesh_web.js`, `/pkg/mesh_web_bg.wasm`, `/pkg/mesh_web.d.ts` | the browser bundle, if embedded (else 404) |
//!
//! `web/index.html` and `web/app.js` are committed. The bundle is the wasm-bindgen output of
//! `crates/mesh-web`, built by `scripts/build-web.sh` into `bootstrap-server/web/pkg/` (or
//! taken from `MESH_WEB_PKG` at build time) and embedded when present ([`BUNDLE_EMBEDDED`]).
//! Every answer carries `Cache-Control: no-cache` (a rebuilt server serves new files at the
//! same paths) and `X-Content-Type-Options: nosniff`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Shared;

/// The browser bundle: wasm-bindgen's output for `crates/mesh-web` (`--target web`).
#[derive(Debug)]
struct Bundle {
    /// `mesh_web.js`, the module the page imports.
    js: &'static [u8],
    /// `mesh_web_bg.wasm`, which `mesh_web.js` fetches next to itself.
    wasm: &'static [u8],
    /// `mesh_web.d.ts`, the TypeScript declarations, if wasm-bindgen wrote them.
    dts: Option<&'static [u8]>,
}

// INDEX_HTML, APP_JS and BUNDLE, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Whether the browser bundle (`mesh_web.js` and `mesh_web_bg.wasm`) was embedded when this
/// binary was built. Without it, `/` serves a page that says how to build it, and `/pkg/…`
/// answers 404.
pub const BUNDLE_EMBEDDED: bool = BUNDLE.is_some();

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const WASM: &str = "application/wasm";
const TEXT: &str = "text/plain; charset=utf-8";

/// Served at `/` when the bundle is not embedded.
const NOT_BUILT: &str = "<!doctype html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>mesh: browser bundle not built</title></head>
<body>
<h1>The browser bundle was not built into this binary</h1>
<p>Run <code>scripts/build-web.sh</code>, then rebuild the server
(<code>cargo build --release -p bootstrap-server</code>).</p>
</body>
</html>
";

/// Served at `/pkg/…` when the bundle is not embedded.
const PKG_NOT_BUILT: &str = "the browser bundle was not built into this binary: run \
                             scripts/build-web.sh, then rebuild the server\n";

/// The page's routes, to merge into the server's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/pkg/mesh_web.js", get(bundle_js))
        .route("/pkg/mesh_web_bg.wasm", get(bundle_wasm))
        .route("/pkg/mesh_web.d.ts", get(bundle_dts))
}

/// An answer with the page's headers.
fn asset(status: StatusCode, content_type: &'static str, body: &'static [u8]) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A file of the bundle, or 404 with the reason.
fn from_bundle(
    shared: &Shared,
    content_type: &'static str,
    file: impl FnOnce(&Bundle) -> Option<&'static [u8]>,
) -> Response {
    shared.metrics.web_requests.inc();
    match BUNDLE.as_ref().map(file) {
        Some(Some(body)) => asset(StatusCode::OK, content_type, body),
        Some(None) => asset(
            StatusCode::NOT_FOUND,
            TEXT,
            b"wasm-bindgen wrote no mesh_web.d.ts for this build\n",
        ),
        None => asset(StatusCode::NOT_FOUND, TEXT, PKG_NOT_BUILT.as_bytes()),
    }
}

async fn index(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.web_requests.inc();
    if BUNDLE_EMBEDDED {
        asset(StatusCode::OK, HTML, INDEX_HTML)
    } else {
        asset(StatusCode::OK, HTML, NOT_BUILT.as_bytes())
    }
}

async fn app_js(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.web_requests.inc();
    asset(StatusCode::OK, JAVASCRIPT, APP_JS)
}

async fn bundle_js(State(shared): State<Arc<Shared>>) -> Response {
    from_bundle(&shared, JAVASCRIPT, |bundle| Some(bundle.js))
}

async fn bundle_wasm(State(shared): State<Arc<Shared>>) -> Response {
    from_bundle(&shared, WASM, |bundle| Some(bundle.wasm))
}

async fn bundle_dts(State(shared): State<Arc<Shared>>) -> Response {
    from_bundle(&shared, TEXT, |bundle| bundle.dts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedded_bundle_is_a_module_and_a_wasm_binary() {
        if let Some(bundle) = &BUNDLE {
            assert!(
                bundle.wasm.starts_with(b"\0asm"),
                "mesh_web_bg.wasm is wasm"
            );
            assert!(!bundle.js.is_empty());
        }
    }

    #[test]
    fn the_not_built_answers_say_what_to_run() {
        assert!(NOT_BUILT.contains("scripts/build-web.sh"));
        assert!(PKG_NOT_BUILT.contains("scripts/build-web.sh"));
        assert_eq!(PKG_NOT_BUILT.lines().count(), 1);
    }
}

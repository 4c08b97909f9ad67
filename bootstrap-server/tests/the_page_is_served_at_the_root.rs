//! The browser page is served at `/` from the binary, with `/app.js` and (when it was built
//! first) the browser bundle at `/pkg/`; `--no-web-page` (`Config::web_page = false`)
//! takes all of it away and leaves `/ws`, `/healthz` and `/metrics` as they were. A real
//! server on 127.0.0.1, port 0, asked over real HTTP/1.1 connections.

use std::net::SocketAddr;

use bootstrap_server::Config;
use bootstrap_server::web::BUNDLE_EMBEDDED;
use mesh_testkit::{DEADLINE, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The committed script, as the binary embedded it.
const APP_JS: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/app.js"));

/// One HTTP/1.1 answer: status, headers (names lower-cased), body bytes.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (lower case); panics if it is missing.
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET {path}` on a new connection, sent as is (no normalisation of `..`).
async fn get(addr: SocketAddr, path: &str) -> Answer {
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = tokio::time::timeout(DEADLINE, fetch)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers in {response:?}"));
    let head = String::from_utf8(response[..split].to_vec()).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {head:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect::<Vec<_>>();
    let body = response[split + 4..].to_vec();
    // A body of exactly Content-Length bytes: no chunked framing to undo.
    if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
        assert_eq!(len.parse::<usize>().ok(), Some(body.len()), "GET {path}");
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// The headers every answer of the page carries.
fn assert_page_headers(answer: &Answer, content_type: &str) {
    assert_eq!(answer.header("content-type"), content_type);
    assert_eq!(answer.header("cache-control"), "no-cache");
    assert_eq!(answer.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn the_root_serves_the_page_or_says_how_to_build_the_bundle() {
    let server = TestServer::start(Config::default()).await;
    let root = get(server.addr(), "/").await;
    assert_eq!(root.status, 200, "{}", root.text());
    assert_page_headers(&root, "text/html; charset=utf-8");
    if BUNDLE_EMBEDDED {
        assert!(
            root.text().contains("node-id"),
            "the page shows the node's id: {}",
            root.text()
        );
    } else {
        assert!(
            root.text().contains("not built") && root.text().contains("scripts/build-web.sh"),
            "without the bundle the page says how to build it: {}",
            root.text()
        );
    }
    let requests = server.metrics().await.count("bootstrap_web_requests_total");
    assert_eq!(requests, 1, "one request for the page so far");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_script_is_served_as_javascript() {
    let server = TestServer::start(Config::default()).await;
    let script = get(server.addr(), "/app.js").await;
    assert_eq!(script.status, 200, "{}", script.text());
    assert_page_headers(&script, "text/javascript; charset=utf-8");
    assert_eq!(script.body, APP_JS, "the committed web/app.js");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_bundle_is_served_if_embedded_and_explained_if_not() {
    let server = TestServer::start(Config::default()).await;
    let js = get(server.addr(), "/pkg/mesh_web.js").await;
    let wasm = get(server.addr(), "/pkg/mesh_web_bg.wasm").await;
    if BUNDLE_EMBEDDED {
        assert_eq!(js.status, 200, "{}", js.text());
        assert_page_headers(&js, "text/javascript; charset=utf-8");
        assert_eq!(wasm.status, 200, "{}", wasm.text());
        assert_page_headers(&wasm, "application/wasm");
        assert!(wasm.body.starts_with(b"\0asm"), "a WebAssembly module");
    } else {
        for answer in [&js, &wasm] {
            assert_eq!(answer.status, 404);
            assert_page_headers(answer, "text/plain; charset=utf-8");
            assert!(answer.text().contains("scripts/build-web.sh"), "{answer:?}");
            assert_eq!(answer.text().lines().count(), 1, "{answer:?}");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let server = TestServer::start(Config::default()).await;
    for path in [
        "/pkg/other.js",
        "/pkg/../Cargo.toml",
        "/pkg/../../Cargo.toml",
        "/pkg/",
        "/index.html",
        "/web/app.js",
        "/build.rs",
    ] {
        let answer = get(server.addr(), path).await;
        assert_eq!(answer.status, 404, "GET {path}: {}", answer.text());
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_the_page_only_the_server_paths_answer() {
    let server = TestServer::start(Config::default().with_web_page(false)).await;
    for path in [
        "/",
        "/app.js",
        "/pkg/mesh_web.js",
        "/pkg/mesh_web_bg.wasm",
        "/pkg/mesh_web.d.ts",
    ] {
        let answer = get(server.addr(), path).await;
        assert_eq!(answer.status, 404, "GET {path}: {}", answer.text());
    }
    let health = get(server.addr(), "/healthz").await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let metrics = server.metrics().await;
    assert_eq!(metrics.count("bootstrap_web_requests_total"), 0);
    server.stop().await.unwrap();
}

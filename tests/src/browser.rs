//! Headless Chromium for the browser tests: [`Browser`] runs `tests/browser/driver.mjs`
//! (Node.js with playwright-core, driving Debian's `chromium`) and talks to it one JSON line
//! at a time. Pages are the bootstrap server's own page (`/`), driven through its input line
//! and read through its log and `window.mesh` (bootstrap-server/web/app.js).
//!
//! What it needs (installed by `scripts/browser-test.sh`, which `.ci/run` calls): `node`,
//! `chromium` (or `CHROMIUM=<path>`), playwright-core under `target/tools/npm` (or
//! `PLAYWRIGHT_MODULES=<node_modules dir>`), and the browser bundle embedded in the server
//! (`scripts/build-web.sh`, then a rebuild). Missing any of them is a test failure that
//! says which, never a skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long one request to the browser may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One headless Chromium with its pages.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// A page of a [`Browser`], by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page(pub usize);

impl Browser {
    /// Starts Chromium (headless) through the driver script.
    ///
    /// # Panics
    ///
    /// If Node.js, the driver or Chromium cannot be started: the message says what to
    /// install.
    pub async fn launch() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/driver.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `node {}`: {e}; the browser tests need Node.js, chromium and \
                     playwright-core: run scripts/browser-test.sh, which installs them",
                    script.display()
                )
            });
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut browser = Self {
            child,
            stdin,
            stdout,
        };
        // The first request proves the driver and Chromium started.
        match browser.call(json!({"op": "version"})).await {
            Ok(version) => eprintln!("headless Chromium {version}"),
            Err(e) => panic!("the browser driver did not start: {e}"),
        }
        browser
    }

    /// One request; its answer, or the error the page or driver reported.
    pub async fn call(&mut self, request: Value) -> Result<Value, String> {
        let mut line = request.to_string();
        line.push('\n');
        let exchange = async {
            self.stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| format!("the browser driver is gone: {e}"))?;
            match self.stdout.next_line().await {
                Ok(Some(answer)) => Ok(answer),
                Ok(None) => Err("the browser driver exited (see its stderr above)".to_owned()),
                Err(e) => Err(format!("reading the browser driver: {e}")),
            }
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                format!("the browser did not answer {request} within {CALL_TIMEOUT:?}")
            })??;
        let mut answer: Value =
            serde_json::from_str(&answer).map_err(|e| format!("bad answer {answer:?}: {e}"))?;
        if let Some(err) = answer.get("err") {
            return Err(err.as_str().unwrap_or_default().to_owned());
        }
        Ok(answer.get_mut("ok").map(Value::take).unwrap_or(Value::Null))
    }

    /// Opens a page (in a context of its own) at `url`.
    pub async fn open(&mut self, url: &str) -> Page {
        let n = self
            .call(json!({"op": "open", "url": url}))
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
        Page(n.as_u64().expect("a page number") as usize)
    }

    /// The value of the JavaScript expression `js` in `page` (a promise is awaited).
    pub async fn eval(&mut self, page: Page, js: &str) -> Value {
        self.call(json!({"op": "eval", "page": page.0, "js": js}))
            .await
            .unwrap_or_else(|e| panic!("evaluating {js:?} in page {}: {e}", page.0))
    }

    /// Types `text` into the page's input line and presses Enter.
    pub async fn say(&mut self, page: Page, text: &str) {
        let request = json!({"op": "type", "page": page.0, "selector": "#say", "text": text});
        self.call(request)
            .await
            .unwrap_or_else(|e| panic!("typing in page {}: {e}", page.0));
    }

    /// Reloads `page` (same context: same storage).
    pub async fn reload(&mut self, page: Page) {
        self.call(json!({"op": "reload", "page": page.0}))
            .await
            .unwrap_or_else(|e| panic!("reloading page {}: {e}", page.0));
    }

    /// Closes `page` (its tab and context: its RTCPeerConnections go with it).
    pub async fn close(&mut self, page: Page) {
        self.call(json!({"op": "close", "page": page.0}))
            .await
            .unwrap_or_else(|e| panic!("closing page {}: {e}", page.0));
    }

    /// Chromium's performance metrics of `page` (`JSHeapUsedSize`, ...).
    pub async fn memory(&mut self, page: Page) -> Value {
        self.call(json!({"op": "memory", "page": page.0}))
            .await
            .unwrap_or_else(|e| panic!("reading page {}'s metrics: {e}", page.0))
    }

    /// Closes the browser.
    pub async fn shut(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

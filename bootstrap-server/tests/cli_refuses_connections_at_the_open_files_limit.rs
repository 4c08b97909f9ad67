//! The `bootstrap-server` binary at its open-files limit: it raises its soft limit to the
//! hard one and says so, serves what fits under it, and closes the connections it has no
//! descriptor for as soon as they arrive, instead of leaving them hanging (and logging an
//! accept error every second) until a descriptor frees. Once connections leave, it serves
//! again.
//!
//! The limit is set for the child by `sh`'s `ulimit` (soft 48, hard 64); the test process
//! keeps its own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mesh_proto::Frame;
use mesh_testkit::{Metrics, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const BIN: &str = env!("CARGO_BIN_EXE_bootstrap-server");
/// Generous for a loaded machine; a connection left hanging never completes.
const DEADLINE: Duration = Duration::from_secs(10);
const SOFT: u32 = 48;
const HARD: u32 = 64;
/// More connections, one after another, than the hard limit has descriptors for.
const SEQUENTIAL: usize = 80;
/// Then this many more at once.
const BURST: usize = 40;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What became of one connection.
enum Outcome {
    /// The server sent its `Challenge`: the connection is served (and held open).
    Served(Box<Ws>),
    /// The server closed it without a frame.
    Refused,
}

/// Connects and reads the first frame; panics if neither happens within [`DEADLINE`].
async fn connect(url: &str, which: String) -> Outcome {
    let attempt = async {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
            return Outcome::Refused;
        };
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => match mesh_proto::decode(&bytes) {
                Ok(Frame::Challenge { .. }) => Outcome::Served(Box::new(ws)),
                other => panic!("{which}: expected a Challenge, got {other:?}"),
            },
            None | Some(Err(_)) => Outcome::Refused,
            Some(Ok(other)) => panic!("{which}: expected a Challenge, got {other:?}"),
        }
    };
    tokio::time::timeout(DEADLINE, attempt)
        .await
        .unwrap_or_else(|_| panic!("{which} hung: neither served nor refused within {DEADLINE:?}"))
}

/// A plain GET of `/metrics`, parsed.
async fn metrics(addr: &str) -> Metrics {
    let get = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = tokio::time::timeout(DEADLINE, get)
        .await
        .expect("GET /metrics within the deadline")
        .expect("GET /metrics");
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    body.parse().expect("metrics text")
}

/// Lines of the child's stderr, counted as they come.
#[derive(Default)]
struct Log {
    raised: AtomicUsize,
    max_connections_warning: AtomicUsize,
    at_the_limit: AtomicUsize,
    axum_accept_error: AtomicUsize,
}

/// The server process, killed if the test ends before it stops it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the binary under the low limit; returns it, its address and its log counts.
fn start() -> (Server, String, Arc<Log>) {
    let script = format!(r#"ulimit -S -n {SOFT} && ulimit -H -n {HARD} && exec "$0" "$@""#);
    let mut child = Command::new("sh")
        .args(["-c", &script, BIN, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let addr = loop {
        assert!(start.elapsed() < DEADLINE, "no 'listening' line");
        let line = lines.next().expect("stderr closed early").unwrap();
        count(&log, &line);
        if let Some((_, rest)) = line.split_once("ws://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    let counts = log.clone();
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            count(&counts, &line);
        }
    });
    (Server(child), addr, log)
}

fn count(log: &Log, line: &str) {
    if line.contains(&format!("open files limit: {HARD} (raised from {SOFT})")) {
        log.raised.fetch_add(1, Ordering::Relaxed);
    }
    if line.contains("does not fit under the open files limit") {
        log.max_connections_warning.fetch_add(1, Ordering::Relaxed);
    }
    if line.contains("at the open-files limit") {
        log.at_the_limit.fetch_add(1, Ordering::Relaxed);
    }
    if line.contains("accept error") {
        log.axum_accept_error.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn connections_beyond_the_open_files_limit_are_refused_at_once() {
    let (mut server, addr, log) = start();
    let url = format!("ws://{addr}/ws");
    assert_eq!(
        log.raised.load(Ordering::Relaxed),
        1,
        "the raised limit is logged"
    );
    assert_eq!(
        log.max_connections_warning.load(Ordering::Relaxed),
        1,
        "the default --max-connections does not fit under {HARD}: a warning says so"
    );
    let began = Instant::now();

    let mut served = Vec::new();
    let mut refused = 0;
    for i in 0..SEQUENTIAL {
        match connect(&url, format!("connection {i}")).await {
            Outcome::Served(ws) => {
                assert_eq!(refused, 0, "connection {i} served after one was refused");
                served.push(ws);
            }
            Outcome::Refused => refused += 1,
        }
    }
    // Each served connection holds one descriptor; the process holds about 15 of its own.
    assert!(
        (20..SEQUENTIAL).contains(&served.len()),
        "{} of {SEQUENTIAL} served under a limit of {HARD}",
        served.len()
    );
    // A burst at once: every one refused, none left hanging.
    let burst = futures_util::future::join_all(
        (0..BURST).map(|i| connect(&url, format!("connection {i} of the burst"))),
    )
    .await;
    for outcome in burst {
        match outcome {
            Outcome::Served(_) => panic!("a connection of the burst was served at the limit"),
            Outcome::Refused => refused += 1,
        }
    }

    // Connections leave; the server serves again.
    let held = served.len();
    drop(served);
    let _again = wait_until(
        "a new connection is served",
        DEADLINE,
        async || match connect(&url, "a connection after the others left".into()).await {
            Outcome::Served(ws) => Ok(ws),
            Outcome::Refused => {
                refused += 1;
                Err(format!("refused ({held} connections closed)"))
            }
        },
    )
    .await;
    let metrics = metrics(&addr).await;
    assert_eq!(
        metrics.count("bootstrap_accept_refused_total"),
        refused as u64,
        "every refused connection was closed at accept"
    );
    assert!(metrics.count("bootstrap_accept_errors_total{reason=\"fd_limit\"}") >= refused as u64);

    // No spinning, no axum loop: refusals are logged, at most once a second.
    let logged = wait_until("the refusals are logged", DEADLINE, async || {
        let logged = log.at_the_limit.load(Ordering::Relaxed);
        if logged > 0 { Ok(logged) } else { Err(logged) }
    })
    .await;
    let seconds = began.elapsed().as_secs() as usize + 1;
    assert!(
        logged <= seconds + 1,
        "{logged} warnings about the limit in less than {seconds} s"
    );
    assert_eq!(log.axum_accept_error.load(Ordering::Relaxed), 0);

    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_until("the server exits after SIGTERM", DEADLINE, async || {
        server.0.try_wait().unwrap()
    })
    .await;
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

//! The real bootstrap server on a loopback listener, for tests and benches.

use std::net::SocketAddr;

use bootstrap_server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{DEADLINE, Metrics};

/// A real bootstrap server running in the test's runtime, bound to `127.0.0.1:0` (or an
/// address of the test's choosing), until [`TestServer::stop`] or the end of the runtime.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    stun: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), bootstrap_server::Error>>,
}

impl TestServer {
    /// Starts a server with `config` on a loopback port chosen by the kernel. With
    /// [`Config::stun_listen`] set, its STUN responder runs too ([`TestServer::stun_addr`]).
    ///
    /// # Panics
    ///
    /// If the listener or the STUN socket cannot be bound.
    pub async fn start(config: Config) -> Self {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a server with `config` on `addr`: e.g. again on the address of a server that
    /// stopped, as a restarted server would be.
    ///
    /// # Panics
    ///
    /// If the listener or the STUN socket cannot be bound.
    pub async fn start_at(addr: SocketAddr, config: Config) -> Self {
        // As the binary listens: with the configured backlog.
        let server = Server::listen(addr, config)
            .await
            .unwrap_or_else(|e| panic!("starting the test server on {addr}: {e}"));
        let addr = server.local_addr().expect("the bound address");
        let stun = server.stun_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stun,
            stop: Some(stop),
            task,
        }
    }

    /// The bound address of the HTTP/WebSocket listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the STUN responder, if the config asked for one.
    pub fn stun_addr(&self) -> Option<SocketAddr> {
        self.stun
    }

    /// The WebSocket URL nodes join through: `ws://{addr}/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A plain HTTP/1.1 GET of `path`: (status code, body).
    ///
    /// # Panics
    ///
    /// If the request fails or takes longer than [`DEADLINE`].
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).await
    }

    /// `/metrics`, parsed.
    ///
    /// # Panics
    ///
    /// If the GET fails, does not answer 200, or the text does not parse.
    pub async fn metrics(&self) -> Metrics {
        metrics(self.addr).await
    }

    /// Asks the server to shut down and waits for `run` to return; its result.
    ///
    /// # Panics
    ///
    /// If `run` does not return within [`DEADLINE`], or its task panicked.
    pub async fn stop(mut self) -> Result<(), bootstrap_server::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .unwrap_or_else(|_| panic!("the test server did not stop within {DEADLINE:?}"))
            .expect("the test server's task panicked")
    }
}

/// `GET path` from a server at `addr` (this process's or another's); (status, body).
///
/// # Panics
///
/// If the request fails or takes longer than [`DEADLINE`].
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = tokio::time::timeout(DEADLINE, fetch)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `/metrics` of a server at `addr`, parsed.
///
/// # Panics
///
/// If the GET fails, does not answer 200, or the text does not parse.
pub async fn metrics(addr: SocketAddr) -> Metrics {
    let (status, text) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics answered {status}: {text}");
    text.parse()
        .unwrap_or_else(|e| panic!("{e}; the whole text:\n{text}"))
}

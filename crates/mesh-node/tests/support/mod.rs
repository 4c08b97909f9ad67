//! What the WebRTC node tests share: the real bootstrap server on 127.0.0.1 (optionally
//! with its STUN responder), nodes on real PeerConnections bound to 127.0.0.1, and waits
//! with a deadline.

#![allow(dead_code)] // each test file uses its own part

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use mesh_node::transport::webrtc::{self, IceServer};
use mesh_node::{Config, Node};
use mesh_proto::identity::Keypair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// The real bootstrap server on 127.0.0.1, port 0.
pub struct Door {
    pub http: SocketAddr,
    /// The STUN responder's bound address, if it runs one.
    pub stun: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), bootstrap_server::Error>>,
}

impl Door {
    /// Starts the server; with `stun`, also its STUN responder on 127.0.0.1:0.
    pub async fn start(stun: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stun_listen = stun.then(|| "127.0.0.1:0".parse().unwrap());
        let config = bootstrap_server::Config::default().with_stun_listen(stun_listen);
        let server = bootstrap_server::Server::bind(listener, config)
            .await
            .unwrap();
        let http = server.local_addr().unwrap();
        let stun = server.stun_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            http,
            stun,
            stop,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the server stops in time")
            .unwrap()
            .unwrap();
    }

    /// The value of one series of `/metrics`, e.g. `bootstrap_stun_answers_total`.
    pub async fn metric(&self, series: &str) -> u64 {
        let fetch = async {
            let mut stream = TcpStream::connect(self.http).await.unwrap();
            let request = format!(
                "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.http
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        };
        let response = tokio::time::timeout(DEADLINE, fetch).await.unwrap();
        response
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{response}"))
    }
}

/// A node on real WebRTC links bound to 127.0.0.1, with `ice` as its ICE servers.
pub async fn webrtc_node(url: &str, ice: Vec<IceServer>) -> Node {
    let transport = webrtc::Config::new()
        .with_bind_addrs(vec!["127.0.0.1:0".parse().unwrap()])
        .with_ice_servers(ice);
    Node::join(
        Config::new(url.parse().expect("a ws:// URL")),
        Keypair::generate(),
        transport,
    )
    .await
    .unwrap()
}

/// Polls `check` every 20 ms until it returns `Some`, for at most [`DEADLINE`].
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

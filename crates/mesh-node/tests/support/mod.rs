//! What the WebRTC node tests share: the real bootstrap server on 127.0.0.1 (optionally
//! with its STUN responder), nodes on real PeerConnections bound to 127.0.0.1, and waits
//! with a deadline.

#![allow(dead_code)] // each test file uses its own part

use std::net::SocketAddr;

use mesh_node::transport::webrtc::{self, IceServer};
use mesh_node::{Config, Node};
use mesh_proto::identity::Keypair;
use mesh_testkit::{Outcome, TestServer};

pub use mesh_testkit::DEADLINE;

/// The real bootstrap server on 127.0.0.1, port 0 (`mesh_testkit::TestServer`).
pub struct Door {
    /// The STUN responder's bound address, if it runs one.
    pub stun: Option<SocketAddr>,
    server: TestServer,
}

impl Door {
    /// Starts the server; with `stun`, also its STUN responder on 127.0.0.1:0.
    pub async fn start(stun: bool) -> Self {
        let stun_listen = stun.then(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let config = bootstrap_server::Config::default().with_stun_listen(stun_listen);
        let server = TestServer::start(config).await;
        Self {
            stun: server.stun_addr(),
            server,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub async fn stop(self) {
        self.server.stop().await.expect("a clean stop");
    }

    /// The value of one series of `/metrics`, e.g. `bootstrap_stun_answers_total`.
    pub async fn metric(&self, series: &str) -> u64 {
        self.server.metrics().await.count(series)
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

/// Checks `check` until it holds (`Some`, `true` or `Ok`), for at most [`DEADLINE`].
pub async fn wait_until<O: Outcome>(what: &str, check: impl AsyncFnMut() -> O) -> O::Done {
    mesh_testkit::wait_until(what, DEADLINE, check).await
}

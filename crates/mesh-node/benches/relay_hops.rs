//! Side by side, in one run: a raw WebRTC DataChannel against mesh unicast over 0, 1 and 3
//! relays, for 100 B and 1 KiB payloads: ping-pong round-trip time and one-way message rate.
//!
//! `cargo bench -p mesh-node --bench relay_hops`
//!
//! The mesh is a chain of five real nodes (`Node::join`, UDP on 127.0.0.1) built on purpose:
//! the bootstrap server's Welcome sample is empty, every node keeps one link of its own
//! (target degree 1) and links to the previous node with `connect_direct`. From node 0,
//! node 1 is 0 relays away, node 2 one relay, node 4 three relays. The raw baseline is two
//! `WebRtcTransport`s with the signaling pumped directly between them.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_node::transport::webrtc::{Config as RtcConfig, WebRtcTransport};
use mesh_node::transport::{Role, Transport, TransportEvent};
use mesh_node::{Config, Event, Node};
use mesh_proto::NodeId;
use mesh_proto::identity::Keypair;
use mesh_proto::signal::SessionId;
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(20);
const ROUND_TRIPS: usize = 500;
const RATE_MESSAGES: usize = 2000;
/// Messages in flight in the rate test (each side's queues hold 256).
const WINDOW: usize = 64;

fn loopback() -> RtcConfig {
    RtcConfig::new().with_bind_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "relay_hops: raw DataChannel vs mesh unicast over 0, 1, 3 relays (127.0.0.1, 2 tokio workers)"
    );
    let mut raw = RawLink::open().await;
    let chain = Chain::build(5).await;
    println!(
        "\n{:<22} {:>7} {:>12} {:>9} {:>14} {:>9}",
        "path", "payload", "RTT p50 µs", "× raw", "rate msg/s", "raw ×"
    );
    for size in [100usize, 1024] {
        let raw_rtt = raw.ping_pong(size).await;
        let raw_rate = raw.rate(size).await;
        println!(
            "{:<22} {:>6}B {:>12.1} {:>9} {:>14.0} {:>9}",
            "raw DataChannel", size, raw_rtt, "1.00×", raw_rate, "1.00×"
        );
        for (relays, hop) in [(0usize, 1usize), (1, 2), (3, 4)] {
            let rtt = chain.ping_pong(hop, size).await;
            let rate = chain.rate(hop, size).await;
            println!(
                "{:<22} {:>6}B {:>12.1} {:>8.2}× {:>14.0} {:>8.2}×",
                format!("mesh, {relays} relays"),
                size,
                rtt,
                rtt / raw_rtt,
                rate,
                raw_rate / rate
            );
        }
    }
    chain.leave().await;
}

/// Two transports with one open link; the answerer echoes in ping-pong mode.
struct RawLink {
    a: Arc<WebRtcTransport>,
    b: Arc<WebRtcTransport>,
    a_events: mpsc::Receiver<TransportEvent>,
    b_events: mpsc::Receiver<TransportEvent>,
    session: SessionId,
}

impl RawLink {
    async fn open() -> Self {
        let (a_tx, a_raw) = mpsc::channel(4096);
        let (b_tx, b_raw) = mpsc::channel(4096);
        let a = Arc::new(WebRtcTransport::new(loopback(), a_tx));
        let b = Arc::new(WebRtcTransport::new(loopback(), b_tx));
        // Pump signals across; forward every other event.
        let (a_fwd, a_events) = mpsc::channel(4096);
        let (b_fwd, b_events) = mpsc::channel(4096);
        tokio::spawn(pump(a_raw, Arc::downgrade(&b), a_fwd));
        tokio::spawn(pump(b_raw, Arc::downgrade(&a), b_fwd));
        let session = SessionId(1);
        b.open(session, NodeId::from_bytes([0xa; 16]), Role::Answerer)
            .unwrap();
        a.open(session, NodeId::from_bytes([0xb; 16]), Role::Offerer)
            .unwrap();
        let mut link = Self {
            a,
            b,
            a_events,
            b_events,
            session,
        };
        link.wait_up().await;
        // The offerer holds its first message until the answerer's first one arrives (or
        // 250 ms: `write_link` in transport/webrtc/session.rs): the answerer speaks first,
        // as in the mesh, so that no round trip below includes that wait.
        link.b
            .send(session, Bytes::from_static(b"ready"))
            .expect("the answerer sends");
        Self::next_data(&mut link.a_events).await;
        link
    }

    async fn wait_up(&mut self) {
        for events in [&mut self.a_events, &mut self.b_events] {
            loop {
                match tokio::time::timeout(DEADLINE, events.recv())
                    .await
                    .expect("link up")
                    .unwrap()
                {
                    TransportEvent::LinkUp { .. } => break,
                    TransportEvent::Closed { reason, .. } => panic!("closed: {reason}"),
                    _ => {}
                }
            }
        }
    }

    async fn next_data(events: &mut mpsc::Receiver<TransportEvent>) -> Bytes {
        loop {
            match tokio::time::timeout(DEADLINE, events.recv())
                .await
                .expect("data")
                .unwrap()
            {
                TransportEvent::Data { bytes, .. } => return bytes,
                TransportEvent::Closed { reason, .. } => panic!("closed: {reason}"),
                _ => {}
            }
        }
    }

    /// Median round trip, µs.
    async fn ping_pong(&mut self, size: usize) -> f64 {
        let msg = Bytes::from(vec![7u8; size]);
        let mut rtts = Vec::with_capacity(ROUND_TRIPS);
        for i in 0..ROUND_TRIPS + 50 {
            let start = Instant::now();
            self.a.send(self.session, msg.clone()).unwrap();
            let got = Self::next_data(&mut self.b_events).await;
            self.b.send(self.session, got).unwrap();
            Self::next_data(&mut self.a_events).await;
            if i >= 50 {
                rtts.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        median(rtts)
    }

    /// One-way messages per second with a window of `WINDOW` unacknowledged messages.
    async fn rate(&mut self, size: usize) -> f64 {
        let msg = Bytes::from(vec![9u8; size]);
        let start = Instant::now();
        let (mut sent, mut received) = (0usize, 0usize);
        while received < RATE_MESSAGES {
            while sent < RATE_MESSAGES && sent - received < WINDOW {
                match self.a.send(self.session, msg.clone()) {
                    Ok(()) => sent += 1,
                    Err(_) => break,
                }
            }
            Self::next_data(&mut self.b_events).await;
            received += 1;
        }
        RATE_MESSAGES as f64 / start.elapsed().as_secs_f64()
    }
}

/// Carries one side's signals to the other transport; forwards its other events.
async fn pump(
    mut from: mpsc::Receiver<TransportEvent>,
    to: Weak<WebRtcTransport>,
    forward: mpsc::Sender<TransportEvent>,
) {
    while let Some(event) = from.recv().await {
        match event {
            TransportEvent::LocalSignal { session, signal } => {
                if let Some(to) = to.upgrade() {
                    to.remote_signal(session, signal);
                }
            }
            other => {
                if forward.send(other).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A chain of real nodes, each linked only to its predecessor and successor.
struct Chain {
    nodes: Vec<Node>,
    events: Vec<tokio::sync::Mutex<mesh_node::Events>>,
    /// Kept for as long as the chain: dropping it stops the server.
    _server: mesh_testkit::TestServer,
}

impl Chain {
    async fn build(n: usize) -> Self {
        // An empty Welcome and a one-peer sample cap: nodes link only where told to.
        let server_config = bootstrap_server::Config::default()
            .with_welcome_sample(0)
            .with_max_sample(1);
        let server = mesh_testkit::TestServer::start(server_config).await;
        let url = server.url();
        let overlay = mesh_core::Config::default()
            .with_target_degree(1)
            .with_min_degree(1)
            .with_max_degree(2)
            .with_entry_slots(0)
            // The rate test pushes far more than 2,000 frames a second down one link, over
            // the default per-link budget (2,000/s, burst 4,000): frames over it are dropped
            // and the window stalls. The bench measures the cost of a hop, not the budget.
            .with_route_budget(mesh_core::budget::Rate::new(1e6, 1e6));
        let mut nodes: Vec<Node> = Vec::new();
        let mut events = Vec::new();
        for k in 0..n {
            let config =
                Config::new(url.parse().expect("a ws:// URL")).with_overlay(overlay.clone());
            let node = Node::join(config, Keypair::generate(), loopback())
                .await
                .expect("join");
            let rx = node.events().unwrap();
            if k > 0 {
                node.connect_direct(nodes[k - 1].id())
                    .await
                    .expect("connect");
                let start = Instant::now();
                while !node
                    .neighbours()
                    .await
                    .unwrap()
                    .contains(&nodes[k - 1].id())
                {
                    assert!(
                        start.elapsed() < DEADLINE,
                        "node {k} did not link to node {}",
                        k - 1
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            nodes.push(node);
            events.push(tokio::sync::Mutex::new(rx));
        }
        for (k, node) in nodes.iter().enumerate() {
            let degree = node.neighbours().await.unwrap().len();
            let want = if k == 0 || k == n - 1 { 1 } else { 2 };
            assert_eq!(degree, want, "node {k} is not a chain link");
        }
        Self {
            nodes,
            events,
            _server: server,
        }
    }

    async fn next_message(&self, k: usize) -> (NodeId, Vec<u8>) {
        let mut events = self.events[k].lock().await;
        loop {
            match tokio::time::timeout(DEADLINE, events.recv())
                .await
                .expect("message")
                .unwrap()
            {
                Event::Message { from, data } => return (from, data),
                Event::LinkDown { peer, reason } => panic!("chain link to {peer} down: {reason}"),
                _ => {}
            }
        }
    }

    /// Median round trip node 0 → node `hop` → node 0, µs.
    async fn ping_pong(&self, hop: usize, size: usize) -> f64 {
        let (a, b) = (&self.nodes[0], &self.nodes[hop]);
        let mut rtts = Vec::with_capacity(ROUND_TRIPS);
        for i in 0..ROUND_TRIPS + 50 {
            let start = Instant::now();
            a.send(b.id(), vec![7u8; size]).await.unwrap();
            let (from, data) = self.next_message(hop).await;
            b.send(from, data).await.unwrap();
            self.next_message(0).await;
            if i >= 50 {
                rtts.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        median(rtts)
    }

    /// One-way messages per second node 0 → node `hop`, the receiver acknowledging every
    /// 16th message, at most `WINDOW` unacknowledged.
    async fn rate(&self, hop: usize, size: usize) -> f64 {
        let (a, b) = (&self.nodes[0], &self.nodes[hop]);
        let start = Instant::now();
        let receiver = async {
            for i in 1..=RATE_MESSAGES {
                let (from, _) = self.next_message(hop).await;
                if i % 16 == 0 {
                    b.send(from, b"ack".to_vec()).await.unwrap();
                }
            }
        };
        let sender = async {
            let mut acked = 0;
            for sent in 0..RATE_MESSAGES {
                while sent - acked * 16 >= WINDOW {
                    self.next_message(0).await;
                    acked += 1;
                }
                a.send(b.id(), vec![9u8; size]).await.unwrap();
            }
        };
        tokio::join!(receiver, sender);
        let rate = RATE_MESSAGES as f64 / start.elapsed().as_secs_f64();
        // Drain the acknowledgements the sender did not wait for.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), async {
            self.events[0].lock().await.recv().await
        })
        .await
        {}
        rate
    }

    async fn leave(self) {
        for node in self.nodes {
            let _ = node.leave().await;
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

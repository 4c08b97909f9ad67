//! A registered peer that cannot link, and the newcomers the server hands it to: how long a
//! newcomer takes to its first link when that peer is the closest of the server's sample,
//! one entry session at a time (`entry_sessions = 1`, the rule before 2026-12-03) against the
//! default (staggered entry sessions), and with no such peer at all — side by side in one
//! run, on real WebRTC nodes and the real bootstrap server on 127.0.0.1.
//!
//! `cargo bench -p mesh-node --bench unlinkable_peer` (harness = false; about 2 minutes).
//!
//! The unlinkable peer is a real node limited to relay candidates whose TURN server does not
//! exist (`turn:127.0.0.1:9`): it registers, answers offers, and never gets a candidate —
//! as a node behind a UDP-blocking firewall without TURN over TCP/TLS did in the NAT lab.
//! Each newcomer's key is drawn until that peer is the member closest to it (the worst
//! case: the core's first entry session goes to the closest sampled peer); the newcomer
//! leaves after its first link, so every newcomer meets the same room. Loopback only;
//! bounded in nodes and time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mesh_node::transport::webrtc::{Config as WebRtcConfig, IceServer};
use mesh_node::{Config, Node};
use mesh_proto::NodeId;
use mesh_proto::identity::Keypair;

/// Healthy members of the room.
const MEMBERS: usize = 5;
/// Newcomers timed per case.
const NEWCOMERS: usize = 5;
/// Longest a newcomer may take to its first link.
const LIMIT: Duration = Duration::from_secs(40);

fn overlay(entry_sessions: usize) -> mesh_core::Config {
    mesh_core::Config::default()
        .with_target_degree(3)
        .with_min_degree(2)
        .with_max_degree(8)
        .with_entry_sessions(entry_sessions)
}

fn loopback() -> WebRtcConfig {
    WebRtcConfig::new().with_bind_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

async fn join(url: &str, key: Keypair, transport: WebRtcConfig, entry: usize) -> Node {
    let config = Config::new(url.parse().expect("a ws:// URL")).with_overlay(overlay(entry));
    Node::join(config, key, transport).await.expect("join")
}

/// A key whose id has `target` as the closest of `members`.
fn key_closest_to(target: NodeId, members: &[NodeId]) -> Keypair {
    loop {
        let key = Keypair::generate();
        let id = key.node_id();
        if members
            .iter()
            .all(|m| *m == target || id.distance(&target) < id.distance(m))
        {
            return key;
        }
    }
}

/// Joins a newcomer (with `key`) and times it from `join` to its first link.
async fn first_link(url: &str, key: Keypair, entry: usize) -> Duration {
    let start = Instant::now();
    let node = join(url, key, loopback(), entry).await;
    loop {
        if !node.neighbours().await.expect("running").is_empty() {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "a newcomer had no link after {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    let _ = node.leave().await;
    took
}

fn row(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = times[times.len() / 2];
    println!(
        "  {name:<58} {:>8.0} {:>8.0} {:>8.0}",
        ms(times[0]),
        ms(median),
        ms(*times.last().expect("timed"))
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let server = mesh_testkit::TestServer::start(Default::default()).await;
    let url = server.url();
    println!(
        "unlinkable_peer: {MEMBERS} members + 1 unlinkable peer on 127.0.0.1, {NEWCOMERS} \
         newcomers per case, each with the unlinkable peer closest to it"
    );
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        members.push(join(&url, Keypair::generate(), loopback(), 3).await);
    }
    let dead_turn = loopback()
        .with_ice_servers(vec![IceServer::turn("turn:127.0.0.1:9", "u", "p")])
        .with_relay_only(true);
    let stuck = join(&url, Keypair::generate(), dead_turn, 3).await;
    let mut ids: Vec<NodeId> = members.iter().map(Node::id).collect();
    ids.push(stuck.id());

    // Interleaved, so the three cases see the same machine.
    let (mut one, mut staggered, mut none) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..NEWCOMERS {
        one.push(first_link(&url, key_closest_to(stuck.id(), &ids), 1).await);
        staggered.push(first_link(&url, key_closest_to(stuck.id(), &ids), 3).await);
    }
    let stats = stuck.stats().await.expect("running");
    println!(
        "the unlinkable peer: {} offers answered, {} links up",
        stats.overlay.sessions_answered_via_server + stats.overlay.sessions_answered_via_mesh,
        stats.overlay.links_up
    );
    // The same room without it: the newcomer's closest member is a linkable one.
    let _ = stuck.leave().await;
    ids.pop();
    for _ in 0..NEWCOMERS {
        let target = members[0].id();
        none.push(first_link(&url, key_closest_to(target, &ids), 3).await);
    }

    println!();
    println!(
        "join → first link (ms)                                           min   median      max"
    );
    row("unlinkable peer closest, one entry session at a time", one);
    row(
        "unlinkable peer closest, staggered entry sessions (default)",
        staggered,
    );
    row("no unlinkable peer, default", none);
    for node in members {
        let _ = node.leave().await;
    }
    server.stop().await.expect("a clean stop");
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
}

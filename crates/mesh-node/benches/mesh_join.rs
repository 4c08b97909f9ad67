//! Join → full degree: how long real WebRTC nodes take to join a mesh through the real
//! bootstrap server, and what share of signaling the server carried.
//!
//! `cargo bench -p mesh-node --bench mesh_join` (add `-- --quick` for a short run).
//! Loopback only; bounded in nodes and time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mesh_node::{Config, Node};
use mesh_proto::identity::Keypair;

/// Overlay settings of the run: the defaults but for the degree, sized for one machine.
fn overlay() -> mesh_core::Config {
    mesh_core::Config::default()
        .with_target_degree(4)
        .with_min_degree(2)
        .with_max_degree(8)
        .with_tick_interval(Duration::from_millis(50))
        .with_announce_interval(Duration::from_millis(500))
}

struct Timing {
    registered: Duration,
    first_link: Duration,
    min_degree: Option<Duration>,
    target_degree: Option<Duration>,
}

/// Polls the node's degree every millisecond until it reaches the target degree, or
/// `possible` (how many other nodes there are), or `limit` passes.
async fn timing(
    node: &Node,
    start: Instant,
    registered: Duration,
    possible: usize,
    limit: Duration,
) -> Timing {
    let (mut first, mut min, mut target) = (None, None, None);
    let o = overlay();
    let goal = o.target_degree.min(possible);
    while start.elapsed() < limit {
        let degree = node.neighbours().await.expect("running").len();
        let t = start.elapsed();
        if degree >= 1 && first.is_none() {
            first = Some(t);
        }
        if degree >= o.min_degree && min.is_none() {
            min = Some(t);
        }
        if degree >= o.target_degree {
            target = Some(t);
        }
        if degree >= goal {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Timing {
        registered,
        first_link: first.expect("no link within the limit"),
        min_degree: min,
        target_degree: target,
    }
}

async fn join(url: &str) -> (Node, Instant) {
    let start = Instant::now();
    let transport = mesh_node::transport::webrtc::Config::new()
        .with_bind_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    let config = Config::new(url.parse().expect("a ws:// URL")).with_overlay(overlay());
    let node = Node::join(config, Keypair::generate(), transport)
        .await
        .expect("join");
    (node, start)
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

fn row(name: &str, v: Vec<Duration>, of: usize) {
    if v.is_empty() {
        println!("{name:<30} (none of {of} reached it)");
        return;
    }
    let n = v.len();
    println!(
        "{name:<30} {:>8.1} {:>8.1} {:>8.1}   ({n} of {of})",
        pct(v.clone(), 0.5),
        pct(v.clone(), 0.9),
        pct(v, 1.0)
    );
}

fn report(label: &str, timings: &[Timing]) {
    println!("\n{label} (ms)");
    println!("{:<30} {:>8} {:>8} {:>8}", "", "p50", "p90", "max");
    let of = timings.len();
    row(
        "join() → registered",
        timings.iter().map(|t| t.registered).collect(),
        of,
    );
    row(
        "join() → first link",
        timings.iter().map(|t| t.first_link).collect(),
        of,
    );
    row(
        "join() → min degree (2)",
        timings.iter().filter_map(|t| t.min_degree).collect(),
        of,
    );
    row(
        "join() → target degree (4)",
        timings.iter().filter_map(|t| t.target_degree).collect(),
        of,
    );
}

async fn signaling_share(nodes: &[Node]) -> (u64, u64, u64, u64) {
    let (mut server, mut mesh, mut door, mut mesh_sessions) = (0, 0, 0, 0);
    for node in nodes {
        let s = node.stats().await.unwrap().overlay;
        server += s.signals_sent_via_server;
        mesh += s.signals_sent_via_mesh;
        door += s.sessions_initiated_via_server;
        mesh_sessions += s.sessions_initiated_via_mesh;
    }
    (server, mesh, door, mesh_sessions)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 6 } else { 16 };
    let limit = Duration::from_secs(10);
    // Kept until the end: dropping it stops the server.
    let server = mesh_testkit::TestServer::start(Default::default()).await;
    let url = server.url();
    println!("mesh_join: {n} real WebRTC nodes on 127.0.0.1, target degree 4, min 2, max 8");

    // 1. One after another: each node joins once the previous one is done. The first node
    // has nobody to link to and is not timed.
    let (first, _) = join(&url).await;
    let mut nodes = vec![first];
    let mut seq = Vec::new();
    for i in 1..n {
        let (node, start) = join(&url).await;
        let registered = start.elapsed();
        seq.push(timing(&node, start, registered, i, limit).await);
        nodes.push(node);
    }
    report(
        "sequential joins after the first (each timed until it reaches the target degree)",
        &seq,
    );
    let (server, mesh, door, mesh_sessions) = signaling_share(&nodes).await;
    println!(
        "signaling messages: {server} through the server, {mesh} through the mesh \
         ({:.1} % server); sessions: {door} door (server), {mesh_sessions} mesh",
        100.0 * server as f64 / (server + mesh).max(1) as f64
    );

    // 2. A wave: n more nodes join at once into the existing mesh.
    let wave = futures_util::future::join_all((0..n).map(|_| {
        let url = url.clone();
        async move {
            let (node, start) = join(&url).await;
            let registered = start.elapsed();
            let t = timing(&node, start, registered, usize::MAX, limit).await;
            (node, t)
        }
    }))
    .await;
    let (wave_nodes, wave_timings): (Vec<Node>, Vec<Timing>) = wave.into_iter().unzip();
    report("a wave of simultaneous joins into that mesh", &wave_timings);
    let (server2, mesh2, door2, mesh_sessions2) = signaling_share(&wave_nodes).await;
    println!(
        "wave nodes' signaling: {server2} through the server, {mesh2} through the mesh \
         ({:.1} % server); sessions: {door2} door, {mesh_sessions2} mesh",
        100.0 * server2 as f64 / (server2 + mesh2).max(1) as f64
    );
    for node in nodes.into_iter().chain(wave_nodes) {
        let _ = node.leave().await;
    }
}

//! Three `bootstrap-server` processes on one real Redis serve one mesh of real WebRTC nodes,
//! through a server killed with `kill -9` and Redis stopped for 10 s:
//!
//! 1. Nine nodes, each given the three servers' URLs, join (three first registered at each
//!    server): one mesh, every ordered pair exchanges a unicast.
//! 2. Server 0 is killed (SIGKILL): its registrations leave every sample within its lease;
//!    a newcomer whose first pick is server 0 registers at the next one and joins; the mesh
//!    is still one.
//! 3. Redis is stopped for 10 s: the servers say `degraded`; a newcomer at each live server
//!    joins during the outage through that server's own nodes. Redis starts again (empty):
//!    the servers re-announce, a client at one server samples nodes registered at the
//!    other, and the mesh is one: every ordered pair of the live nodes exchanges a unicast.
//!
//! It needs `redis-server`, so it is `#[ignore]`d in the workspace run: `.ci/run` installs
//! it and runs this file (`cargo test -p mesh-e2e --test fleet_of_processes -- --ignored`).
//! Without it, it fails saying so; it never skips.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use mesh_e2e::{
    Client, DEADLINE, MeshNode, e2e_overlay, next_message, wait_for_degree, wait_until,
};
use mesh_node::Event;
use mesh_proto::identity::Keypair;
use mesh_proto::{NodeId, ServerUrl};
use mesh_testkit::redis_server::Redis;
use mesh_testkit::server::{http_get, metrics};
use mesh_testkit::turn::free_port;
use tokio::process::{Child, Command};

const SERVERS: usize = 3;
/// The servers' lease: a killed server's nodes leave samples within it.
const LEASE_SECS: &str = "3";

/// A `bootstrap-server` process of the fleet.
struct ServerProc {
    addr: SocketAddr,
    child: Child,
}

impl ServerProc {
    async fn spawn(bin: &str, redis: &str) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(bin)
            .args(["--listen", &addr.to_string(), "--no-web-page"])
            .args(["--fleet-prefix", "procs", "--fleet-lease", LEASE_SECS])
            .args(["--fleet-timeout", "0.5"])
            .env("BOOTSTRAP_REDIS", redis)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn bootstrap-server");
        let server = Self { addr, child };
        server.wait_health("ok").await;
        server
    }

    fn url(&self) -> ServerUrl {
        format!("ws://{}/ws", self.addr).parse().unwrap()
    }

    /// Waits until `/healthz` starts with `want`.
    async fn wait_health(&self, want: &str) {
        let what = format!("{} /healthz says {want}", self.addr);
        wait_until(&what, DEADLINE, async || {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return Err("not listening yet".to_owned());
            }
            let (status, body) = http_get(self.addr, "/healthz").await;
            if status == 200 && body.starts_with(want) {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        })
        .await;
    }
}

/// A key whose first pick among `urls` is `urls[server]`.
fn key_for(urls: &[ServerUrl], server: usize) -> Keypair {
    let core = mesh_core::Config::default().with_bootstraps(urls.to_vec());
    loop {
        let key = Keypair::generate();
        if core.first_bootstrap(&key.node_id()) == Some(&urls[server]) {
            return key;
        }
    }
}

/// A real WebRTC node given every URL of the fleet, with `key`.
async fn join(urls: &[ServerUrl], key: Keypair) -> MeshNode {
    let config = mesh_node::Config::new(urls[0].clone())
        .with_bootstraps(urls.to_vec())
        .with_overlay(e2e_overlay())
        .with_bootstrap_timeout(Duration::from_secs(3));
    let transport = mesh_node::transport::webrtc::Config::new()
        .with_bind_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    let node = mesh_node::Node::join(config, key, transport)
        .await
        .expect("join");
    let events = node.events().expect("events");
    MeshNode { node, events }
}

/// Every ordered pair of `nodes` exchanges a unicast (each delivered, from the right node,
/// with the right bytes): the mesh is one component.
async fn every_pair_exchanges_a_unicast(nodes: &mut [MeshNode], round: &str) {
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.node.id()).collect();
    for (i, to) in ids.iter().enumerate() {
        for (j, from) in ids.iter().enumerate() {
            if i == j {
                continue;
            }
            let data = format!("{round}: {from} -> {to}").into_bytes();
            // A route may be forming: retry a refused send until the deadline.
            wait_until("a unicast is accepted", DEADLINE, async || {
                nodes[j]
                    .node
                    .send(*to, data.clone())
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            match next_message(&mut nodes[i]).await {
                Event::Message { from: got, data: d } => {
                    assert_eq!((got, &d), (*from, &data), "{round}");
                }
                other => panic!("{round}: expected a message, got {other:?}"),
            }
        }
    }
}

/// Registrations counted at the server at `addr` (0 if it cannot answer).
async fn registrations(addr: SocketAddr) -> u64 {
    metrics(addr).await.count("bootstrap_registrations_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: run by .ci/run (cargo test -p mesh-e2e --test fleet_of_processes -- --ignored)"]
async fn three_servers_on_one_redis_serve_one_mesh_through_a_kill_and_an_outage() {
    let [bin] = mesh_e2e::built_binaries(["bootstrap-server"]).expect("the server binary");
    let mut redis = Redis::start();
    let mut servers = Vec::new();
    for _ in 0..SERVERS {
        servers.push(ServerProc::spawn(&bin, &redis.url()).await);
    }
    let urls: Vec<ServerUrl> = servers.iter().map(ServerProc::url).collect();

    // 1. Nine nodes, three first at each server, one after the other.
    let mut nodes: Vec<MeshNode> = Vec::new();
    for i in 0..9 {
        let node = join(&urls, key_for(&urls, i % SERVERS)).await;
        if i > 0 {
            wait_for_degree(&node, 1, Duration::from_secs(30)).await;
        }
        nodes.push(node);
    }
    for server in &servers {
        let n = registrations(server.addr).await;
        assert!(n >= 3, "{} registered {n}, expected its three", server.addr);
    }
    for node in &nodes {
        wait_for_degree(node, 2, Duration::from_secs(60)).await;
    }
    every_pair_exchanges_a_unicast(&mut nodes, "three servers").await;

    // 2. kill -9 server 0.
    let at_zero: Vec<NodeId> = {
        let core = mesh_core::Config::default().with_bootstraps(urls.clone());
        nodes
            .iter()
            .map(|n| n.node.id())
            .filter(|id| core.first_bootstrap(id) == Some(&urls[0]))
            .collect()
    };
    assert_eq!(at_zero.len(), 3);
    let mut killed = servers.remove(0);
    killed.child.start_kill().expect("SIGKILL");
    killed.child.wait().await.expect("reaped");
    // Its registrations leave the samples within the lease.
    let (mut watcher, _) = Client::join(servers[0].url().as_str(), "default").await;
    wait_until("server 0's nodes leave the samples", DEADLINE, async || {
        let peers = watcher.peers(64).await;
        let ghosts = peers.iter().filter(|p| at_zero.contains(p)).count();
        if ghosts == 0 && !peers.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{ghosts} of {} sampled are server 0's",
                peers.len()
            ))
        }
    })
    .await;
    drop(watcher);
    // A newcomer whose first pick is the dead server joins through the next.
    let before = registrations(servers[0].addr).await;
    let newcomer = join(&urls, key_for(&urls, 0)).await;
    wait_for_degree(&newcomer, 1, Duration::from_secs(30)).await;
    assert!(
        registrations(servers[0].addr).await > before,
        "the newcomer registered at the server after the dead one"
    );
    nodes.push(newcomer);
    every_pair_exchanges_a_unicast(&mut nodes, "server 0 killed").await;

    // 3. Redis stopped for 10 s.
    let stopped = tokio::time::Instant::now();
    redis.kill();
    for server in &servers {
        server.wait_health("degraded: redis unreachable").await;
    }
    // A newcomer at each live server joins through that server's own nodes.
    for (i, server) in servers.iter().enumerate() {
        let newcomer = join(&urls, key_for(&urls, i + 1)).await;
        wait_for_degree(&newcomer, 1, Duration::from_secs(30)).await;
        let m = metrics(server.addr).await;
        assert_eq!(m.value("bootstrap_fleet_redis_up"), 0.0);
        assert!(m.count("bootstrap_fleet_outages_total") >= 1);
        nodes.push(newcomer);
    }
    tokio::time::sleep_until(stopped + Duration::from_secs(10)).await;
    redis.restart();
    for server in &servers {
        server.wait_health("ok").await;
    }
    // The fleet is whole: a client at server 2 samples the nodes registered at server 1.
    let at_one: HashSet<NodeId> = {
        let core = mesh_core::Config::default().with_bootstraps(urls.clone());
        nodes
            .iter()
            .map(|n| n.node.id())
            .filter(|id| core.first_bootstrap(id) == Some(&urls[1]))
            .collect()
    };
    let (mut watcher, _) = Client::join(servers[1].url().as_str(), "default").await;
    wait_until(
        "server 1's nodes are sampled at server 2",
        DEADLINE,
        async || {
            let peers: HashSet<NodeId> = watcher.peers(64).await.into_iter().collect();
            let seen = at_one.intersection(&peers).count();
            if seen > 0 {
                Ok(())
            } else {
                Err(format!(
                    "none of {} sampled registered at server 1",
                    peers.len()
                ))
            }
        },
    )
    .await;
    every_pair_exchanges_a_unicast(&mut nodes, "after the outage").await;
}

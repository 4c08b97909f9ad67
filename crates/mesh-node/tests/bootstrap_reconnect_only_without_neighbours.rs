//! A node reconnects to the bootstrap server (with backoff) only while it has no link.
//! Uses the in-memory transport: the subject is the server connection, not WebRTC.

use std::time::Duration;

use mesh_node::transport::memory::{MemoryNetwork, MemoryTransport};
use mesh_node::{Config, Node, NodeStats};
use mesh_proto::identity::Keypair;
use mesh_testkit::{TestServer, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);

/// A bootstrap server with default limits on `addr` (port 0: any).
async fn start(addr: &str) -> TestServer {
    TestServer::start_at(addr.parse().unwrap(), Default::default()).await
}

async fn stop(server: TestServer) {
    server.stop().await.expect("the server stops cleanly");
}

async fn join(net: &MemoryNetwork, url: &str) -> Node {
    join_room(net, url, "default").await
}

async fn join_room(net: &MemoryNetwork, url: &str, room: &str) -> Node {
    let key = Keypair::generate();
    let (net, id) = (net.clone(), key.node_id());
    let config = Config::new(url.parse().expect("a ws:// URL"))
        .with_room(room.parse().unwrap())
        .with_reconnect(Duration::from_millis(50), Duration::from_millis(400));
    Node::join_with(config, key, move |events| {
        MemoryTransport::new(net, id, events)
    })
    .await
    .unwrap()
}

async fn wait_stats(node: &Node, what: &str, ok: impl Fn(&NodeStats) -> bool) -> NodeStats {
    wait_until(what, DEADLINE, async || {
        let stats = node.stats().await.unwrap();
        if ok(&stats) { Ok(stats) } else { Err(stats) }
    })
    .await
}

#[tokio::test]
async fn a_lone_node_reconnects_and_a_linked_node_does_not() {
    let net = MemoryNetwork::new();
    let server = start("127.0.0.1:0").await;
    let (addr, url) = (server.addr().to_string(), server.url());
    let lone = join(&net, &url).await;
    wait_stats(&lone, "registered", |s| s.server_connected).await;

    stop(server).await;
    wait_stats(&lone, "the lone node sees the server go", |s| {
        !s.server_connected
    })
    .await;
    // The server comes back on the same address: the lone node registers again.
    let server = start(&addr).await;
    let stats = wait_stats(&lone, "the lone node re-registers", |s| {
        s.server_registrations == 2
    })
    .await;
    assert!(stats.server_connected);

    // A second node links with it; a control node sits alone in another room.
    let other = join(&net, &url).await;
    let control = join_room(&net, &url, "control").await;
    wait_stats(&other, "linked", |s| s.degree == 1).await;
    wait_stats(&lone, "linked", |s| s.degree == 1).await;
    stop(server).await;
    for node in [&lone, &other, &control] {
        wait_stats(node, "disconnected", |s| !s.server_connected).await;
    }
    let server = start(&addr).await;
    // The control, with no link and the same backoff, comes back: by then the linked nodes
    // would have too, had they tried.
    wait_stats(&control, "the control re-registers", |s| {
        s.server_registrations == 2
    })
    .await;
    for node in [&lone, &other] {
        let stats = node.stats().await.unwrap();
        assert!(stats.degree >= 1);
        assert!(
            !stats.server_connected,
            "a node with a neighbour does not reconnect"
        );
    }
    // Once it loses its last link, it goes back to the door.
    let peer = other.neighbours().await.unwrap();
    for p in peer {
        other.disconnect(p).await.unwrap();
    }
    control.leave().await.unwrap();
    lone.leave().await.unwrap();
    wait_stats(&other, "the node that lost every link re-registers", |s| {
        s.server_connected
    })
    .await;
    stop(server).await;
}

//! Twelve real WebRTC nodes join through the real bootstrap server: each uses the server
//! for its one entry session; every other link is signaled through the mesh. Then any node
//! reaches any other, and a broadcast reaches every node exactly once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bootstrap_server::Config;
use mesh_e2e::{TestServer, e2e_overlay, next_message, wait_for_settled, webrtc_mesh};
use mesh_node::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_nodes_one_server_session_each_then_unicast_and_broadcast() {
    let server = TestServer::start(Config::default()).await;
    let n = 12;
    let overlay = e2e_overlay();
    let min = overlay.min_degree;
    let mut nodes = webrtc_mesh(&server, n, overlay).await;

    // Signaling: at most one session per node was carried by the server.
    let mut door = 0;
    let mut mesh = 0;
    for node in &nodes {
        let stats = node.node.stats().await.unwrap();
        assert!(stats.degree >= min, "degree {}: {stats:?}", stats.degree);
        assert!(
            stats.overlay.sessions_initiated_via_server <= 1,
            "{} used the server for {} sessions",
            node.node.id(),
            stats.overlay.sessions_initiated_via_server
        );
        door += stats.overlay.sessions_initiated_via_server;
        mesh += stats.overlay.sessions_initiated_via_mesh;
        assert!(
            stats.overlay.signals_sent_via_mesh > 0
                || stats.overlay.sessions_initiated_via_mesh == 0
        );
    }
    assert_eq!(
        door,
        (n - 1) as u64,
        "every node but the first came in through one entry session"
    );
    assert!(mesh > 0, "further links were signaled through the mesh");

    // Once the shape has settled (nodes shed and rewire links for a while after reaching
    // their degree), any node reaches any other, payload intact.
    wait_for_settled(&nodes, Duration::from_secs(1), Duration::from_secs(30)).await;
    let ids: Vec<_> = nodes.iter().map(|m| m.node.id()).collect();
    for (a, node) in nodes.iter().enumerate() {
        for (b, to) in ids.iter().enumerate() {
            if a != b {
                node.node
                    .send(*to, format!("{a}->{b}").into_bytes())
                    .await
                    .unwrap();
            }
        }
    }
    for (b, node) in nodes.iter_mut().enumerate() {
        let mut got = HashSet::new();
        while got.len() < n - 1 {
            match next_message(node).await {
                Event::Message { from, data } => {
                    let text = String::from_utf8(data).unwrap();
                    let a: usize = text.split("->").next().unwrap().parse().unwrap();
                    assert_eq!(text, format!("{a}->{b}"));
                    assert_eq!(from, ids[a]);
                    assert!(got.insert(a), "duplicate message {text}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    // Broadcasts from three nodes reach every other node exactly once.
    let origins = [0, 5, 11];
    for o in origins {
        nodes[o]
            .node
            .broadcast(format!("all from {o}").into_bytes())
            .await
            .unwrap();
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let expected = origins.iter().filter(|o| **o != i).count();
        let mut got: HashMap<_, usize> = HashMap::new();
        for _ in 0..expected {
            match next_message(node).await {
                Event::Broadcast { from, data } => {
                    let o = ids.iter().position(|id| *id == from).unwrap();
                    assert_eq!(data, format!("all from {o}").into_bytes());
                    *got.entry(o).or_default() += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(got.values().all(|c| *c == 1), "node {i}: {got:?}");
        let stats = node.node.stats().await.unwrap();
        assert_eq!(
            stats.overlay.broadcasts_delivered, expected as u64,
            "no duplicate delivered"
        );
    }
    for node in nodes {
        node.node.leave().await.unwrap();
    }
    server.stop().await.unwrap();
}

//! Twelve real WebRTC nodes join through the real bootstrap server: each uses the server
//! for its entry session (one in the common case: the next starts only if the node still
//! has no link `entry_stagger` later); every other link is signaled through the mesh.
//! Then any node reaches any other, and a broadcast reaches every node exactly once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bootstrap_server::Config;
use mesh_e2e::{TestServer, e2e_overlay, next_message, wait_for_settled, webrtc_mesh};
use mesh_node::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_nodes_join_mostly_through_one_server_session_each_then_unicast_and_broadcast() {
    let server = TestServer::start(Config::default()).await;
    let n = 12;
    let overlay = e2e_overlay();
    let (min, entry_sessions) = (overlay.min_degree, overlay.entry_sessions as u64);
    let mut nodes = webrtc_mesh(&server, n, overlay).await;

    // Signaling through the server. A node with no link starts one entry session, and
    // another only if it still has none `entry_stagger` (1 s) later, up to
    // `entry_sessions` (3). On loopback the entry link is up in 30–400 ms on an idle
    // machine, and in up to 670 ms under `stress-ng --cpu 2` (on 2 cores, measured with
    // `NodeStats::link_setup`): every join used one session in every run, idle or loaded.
    // A busier machine may still take a link past the stagger, and such a join uses two:
    // so each node at most `entry_sessions`, and most joins exactly one, 2(n - 1) at most
    // in all. Starting them all at once (up to 3 a join, 30 in all here), or a stagger far
    // shorter than a loopback link's setup, would fail this.
    let mut door = 0;
    let mut single = 0;
    let mut mesh = 0;
    for (i, node) in nodes.iter().enumerate() {
        let stats = node.node.stats().await.unwrap();
        assert!(stats.degree >= min, "degree {}: {stats:?}", stats.degree);
        let via_server = stats.overlay.sessions_initiated_via_server;
        assert!(
            via_server <= entry_sessions,
            "{} used the server for {via_server} sessions",
            node.node.id(),
        );
        // Every node but the first came in through the server (the first, alone until
        // the second came, may have offered to it through the server as well).
        if i > 0 {
            assert!(via_server >= 1, "node {i} joined without the server");
            single += u64::from(via_server == 1);
        }
        door += via_server;
        mesh += stats.overlay.sessions_initiated_via_mesh;
        assert!(
            stats.overlay.signals_sent_via_mesh > 0
                || stats.overlay.sessions_initiated_via_mesh == 0
        );
    }
    let joins = (n - 1) as u64;
    assert!(
        2 * single > joins,
        "only {single} of {joins} joins used one server session"
    );
    assert!(
        door <= 2 * joins,
        "{door} server sessions for {joins} joins"
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

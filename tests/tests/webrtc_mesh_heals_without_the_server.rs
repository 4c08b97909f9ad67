//! With the bootstrap server stopped, nodes that drop neighbours replace them through the
//! mesh; a node that leaves is replaced; a malformed frame costs only its sender's link.

use std::time::Duration;

use bootstrap_server::Config;
use mesh_e2e::{
    TestServer, e2e_overlay, next_message, wait_for_degree, wait_for_settled, wait_until,
    webrtc_mesh,
};
use mesh_node::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_still_form_and_messages_route_with_the_server_gone() {
    let server = TestServer::start(Config::default()).await;
    let n = 8;
    let overlay = e2e_overlay();
    let min = overlay.min_degree;
    let mut nodes = webrtc_mesh(&server, n, overlay).await;
    server.stop().await.unwrap();
    // Every node notices the server is gone (its WebSocket closes).
    for node in &nodes {
        wait_until(
            "a node noticing the server stop",
            mesh_e2e::DEADLINE,
            async || !node.node.stats().await.unwrap().server_connected,
        )
        .await;
    }

    let mut before = Vec::new();
    for node in &nodes {
        before.push(
            node.node
                .stats()
                .await
                .unwrap()
                .overlay
                .sessions_initiated_via_mesh,
        );
    }
    // One node drops all its neighbours but one (never taking a peer below the minimum; a
    // node cut off entirely could not come back without the server): it falls below the
    // minimum degree and must rebuild through the mesh alone. The mesh settles first: a
    // link being shed meanwhile could take the one kept, or a peer's count read just
    // before, and leave a node with none (once in a run of the suite under stress-ng).
    wait_for_settled(&nodes, Duration::from_secs(1), Duration::from_secs(30)).await;
    let mut dropped = 0;
    let v = 1;
    let mine = nodes[v].node.neighbours().await.unwrap();
    for peer in mine.iter().skip(1) {
        let j = nodes.iter().position(|m| m.node.id() == *peer).unwrap();
        if nodes[j].node.neighbours().await.unwrap().len() > min {
            nodes[v].node.disconnect(*peer).await.unwrap();
            dropped += 1;
        }
    }
    assert!(dropped > 0, "links were dropped");
    for node in &nodes {
        wait_for_degree(node, min, Duration::from_secs(60)).await;
    }
    // The node below its target tops up through the mesh: at once, or once the peers it
    // knows are out of their retry backoff (1 s), so wait for it rather than read once.
    wait_until(
        "replacement links signaled through the mesh",
        Duration::from_secs(30),
        async || {
            let mut after = 0;
            for (i, node) in nodes.iter().enumerate() {
                let stats = node.node.stats().await.unwrap();
                after += stats.overlay.sessions_initiated_via_mesh - before[i];
            }
            after > 0
        },
    )
    .await;
    for node in &nodes {
        let stats = node.node.stats().await.unwrap();
        assert!(!stats.server_connected);
        assert_eq!(
            stats.server_registrations, 1,
            "no node went back to the server"
        );
    }

    // Once the repaired shape has settled, messages still route.
    wait_for_settled(&nodes, Duration::from_secs(1), Duration::from_secs(30)).await;
    let to = nodes[n - 1].node.id();
    nodes[0]
        .node
        .send(to, b"no server needed".to_vec())
        .await
        .unwrap();
    match next_message(&mut nodes[n - 1]).await {
        Event::Message { data, .. } => assert_eq!(data, b"no server needed"),
        other => panic!("unexpected {other:?}"),
    }
    for node in nodes {
        node.node.leave().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_is_replaced_and_a_malformed_frame_drops_one_link() {
    let server = TestServer::start(Config::default()).await;
    let n = 7;
    let overlay = e2e_overlay();
    let min = overlay.min_degree;
    let mut nodes = webrtc_mesh(&server, n, overlay).await;

    // A node leaves: its neighbours see it go and get back to the minimum degree.
    let leaver = nodes.remove(3);
    let gone = leaver.node.id();
    let former = leaver.node.neighbours().await.unwrap();
    leaver.node.leave().await.unwrap();
    for node in nodes.iter_mut().filter(|m| former.contains(&m.node.id())) {
        let wait = async {
            loop {
                if let Some(Event::LinkDown { peer, .. }) = node.events.recv().await
                    && peer == gone
                {
                    return;
                }
            }
        };
        tokio::time::timeout(mesh_e2e::DEADLINE, wait)
            .await
            .expect("LinkDown for the leaver");
    }
    for node in &nodes {
        wait_for_degree(node, min, Duration::from_secs(60)).await;
        assert!(!node.node.neighbours().await.unwrap().contains(&gone));
    }

    // A neighbour sends garbage: the victim drops that link only. (Once the shape has
    // settled, so that no link is being shed as redundant meanwhile.)
    wait_for_settled(&nodes, Duration::from_secs(1), Duration::from_secs(30)).await;
    let victim = &nodes[0];
    let neighbours = victim.node.neighbours().await.unwrap();
    let offender_id = neighbours[0];
    let offender = nodes.iter().find(|m| m.node.id() == offender_id).unwrap();
    offender
        .node
        .send_raw_to_neighbour(victim.node.id(), vec![1, 0xFF, 0xFF])
        .await
        .unwrap();
    wait_until(
        "the malformed frame noticed",
        mesh_e2e::DEADLINE,
        async || victim.node.stats().await.unwrap().overlay.malformed_frames == 1,
    )
    .await;
    let now = victim.node.neighbours().await.unwrap();
    assert!(!now.contains(&offender_id), "the offender's link is gone");
    for other in &neighbours[1..] {
        assert!(now.contains(other), "other links stay");
    }
    // Both keep working.
    let to = nodes[n - 2].node.id();
    nodes[0]
        .node
        .send(to, b"still here".to_vec())
        .await
        .unwrap();
    match next_message(&mut nodes[n - 2]).await {
        Event::Message { data, .. } => assert_eq!(data, b"still here"),
        other => panic!("unexpected {other:?}"),
    }
    for node in nodes {
        node.node.leave().await.unwrap();
    }
}

//! Life without the server: a node that loses every link, with the bootstrap server gone,
//! rejoins through the door a former neighbour announced. Real WebRTC nodes on 127.0.0.1,
//! the real bootstrap server as the door (and as the bootstrap server, then stopped).

use std::time::Duration;

use bootstrap_server::Config;
use mesh_e2e::{
    DEADLINE, MeshNode, TestServer, e2e_overlay, join_webrtc_with, next_message, wait_until,
};
use mesh_node::{Event, NodeStats};

async fn join(bootstrap: &TestServer, door: Option<&TestServer>) -> MeshNode {
    let mut config = mesh_node::Config::new(bootstrap.url().parse().expect("a ws:// URL"))
        .with_overlay(e2e_overlay())
        .with_reconnect(Duration::from_millis(50), Duration::from_millis(400));
    if let Some(door) = door {
        config = config.with_door(door.url().parse().unwrap());
    }
    join_webrtc_with(config).await
}

async fn stats(node: &MeshNode) -> NodeStats {
    node.node.stats().await.expect("node running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_every_link_rejoins_through_a_neighbours_door() {
    let bootstrap = TestServer::start(Config::default()).await;
    // Node a runs a door (here a second bootstrap server, as `mesh-node --door` starts).
    let door = TestServer::start(Config::default()).await;
    let a = join(&bootstrap, Some(&door)).await;
    wait_until("a registering at its own door", DEADLINE, async || {
        stats(&a).await.door_registered
    })
    .await;
    let mut b = join(&bootstrap, None).await;
    let c = join(&bootstrap, None).await;
    for node in [&a, &b, &c] {
        wait_until("a full triangle", DEADLINE, async || {
            stats(node).await.degree == 2
        })
        .await;
    }

    // The bootstrap server goes, and so does c (b's contact table still holds it).
    bootstrap.stop().await.unwrap();
    for node in [&a, &b] {
        wait_until("the bootstrap server gone", DEADLINE, async || {
            !stats(node).await.server_connected
        })
        .await;
    }
    let c_id = c.node.id();
    c.node.leave().await.unwrap();
    wait_until("c's links gone", DEADLINE, async || {
        stats(&b).await.degree == 1 && stats(&a).await.degree == 1
    })
    .await;
    assert_eq!(stats(&b).await.door_rejoins, 0);

    // b loses its last link: with no bootstrap server, only a's door can bring it back.
    b.node.disconnect(a.node.id()).await.unwrap();
    wait_until("b rejoining through a's door", DEADLINE, async || {
        stats(&b).await.door_rejoins == 1
    })
    .await;
    wait_until("b and a linked again", DEADLINE, async || {
        b.node.neighbours().await.unwrap() == [a.node.id()]
            && a.node.neighbours().await.unwrap() == [b.node.id()]
    })
    .await;
    // Linked again, b leaves the door: a's door keeps its place for the next one.
    wait_until("b leaving a's door", DEADLINE, async || {
        !stats(&b).await.server_connected
    })
    .await;
    let s = stats(&b).await;
    assert!(
        !b.node.neighbours().await.unwrap().contains(&c_id),
        "the dead neighbour is not a link"
    );
    // Registered twice in all: once at the bootstrap server, once at a's door.
    assert_eq!(s.server_registrations, 2, "{s:?}");
    assert!(s.overlay.sessions_initiated_via_server >= 2, "{s:?}");
    let a_stats = stats(&a).await;
    assert!(!a_stats.server_connected, "a never went back to a server");
    assert!(a_stats.overlay.sessions_answered_via_server >= 1);

    // And the link carries traffic both ways.
    let mut a = a;
    b.node
        .send(a.node.id(), b"through the door".to_vec())
        .await
        .unwrap();
    match next_message(&mut a).await {
        Event::Message { from, data } => {
            assert_eq!(
                (from, data.as_slice()),
                (b.node.id(), &b"through the door"[..])
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    a.node.send(b.node.id(), b"back".to_vec()).await.unwrap();
    match next_message(&mut b).await {
        Event::Message { from, data } => {
            assert_eq!((from, data.as_slice()), (a.node.id(), &b"back"[..]));
        }
        other => panic!("unexpected {other:?}"),
    }
    for node in [a, b] {
        node.node.leave().await.unwrap();
    }
    door.stop().await.unwrap();
}

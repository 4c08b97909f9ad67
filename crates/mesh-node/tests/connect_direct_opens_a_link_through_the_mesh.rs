//! `Node::connect_direct`: a direct link to a node that is not a neighbour, with its
//! signaling carried through the mesh, on real webrtc-rs PeerConnections on 127.0.0.1 and
//! the real bootstrap server on port 0. And its errors: to itself, and with no route at
//! all (no link, no server); a well-formed id that nobody has is accepted (the mesh routes
//! towards any id) and its session fails.

mod support;

use std::time::Duration;

use mesh_node::transport::webrtc;
use mesh_node::{Config, Error, Event, Events, Node};
use mesh_proto::NodeId;
use mesh_proto::identity::Keypair;
use support::{DEADLINE, Door, wait_until};

/// A node on real WebRTC bound to 127.0.0.1 with `overlay` as its overlay settings.
async fn join(url: &str, overlay: mesh_core::Config) -> (Node, Events) {
    let transport = webrtc::Config::new().with_bind_addrs(vec!["127.0.0.1:0".parse().unwrap()]);
    let node = Node::join(
        Config::new(url.parse().expect("a ws:// URL")).with_overlay(overlay),
        Keypair::generate(),
        transport,
    )
    .await
    .unwrap();
    let events = node.events().unwrap();
    (node, events)
}

/// Reads `events` until a `LinkUp` with `peer`, with a deadline.
async fn link_up_with(events: &mut Events, peer: NodeId) {
    let wait = async {
        loop {
            match events.recv().await {
                Some(Event::LinkUp { peer: p }) if p == peer => return,
                Some(_) => {}
                None => panic!("the node stopped before its link to {peer} came up"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no LinkUp with {peer} within {DEADLINE:?}"));
}

async fn neighbours(node: &Node) -> Vec<NodeId> {
    node.neighbours().await.expect("the node is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_link_to_a_non_neighbour_is_signaled_through_the_mesh() {
    let door = Door::start(false).await;
    // A node that drops a link does not pick that peer again for a long time: once a and c
    // are apart, only connect_direct brings them together.
    let overlay = mesh_core::Config::default().with_retry_backoff(Duration::from_secs(600));
    let (a, mut a_events) = join(&door.url(), overlay.clone()).await;
    let (b, _b_events) = join(&door.url(), overlay.clone()).await;
    let (c, mut c_events) = join(&door.url(), overlay).await;
    let (a_id, b_id, c_id) = (a.id(), b.id(), c.id());

    // The three form a triangle (each wants at least min(3, others) links).
    wait_until("a, b and c are all linked", || async {
        let all = neighbours(&a).await.len() == 2
            && neighbours(&b).await.len() == 2
            && neighbours(&c).await.len() == 2;
        all.then_some(())
    })
    .await;
    // Take a and c apart; both still reach each other through b.
    a.disconnect(c_id).await.unwrap();
    wait_until("a and c are apart", || async {
        let apart = neighbours(&a).await == [b_id] && neighbours(&c).await == [b_id];
        apart.then_some(())
    })
    .await;
    while a_events.try_recv().is_some() {}
    while c_events.try_recv().is_some() {}
    let before = a.stats().await.unwrap().overlay;
    let c_before = c.stats().await.unwrap().overlay;

    a.connect_direct(c_id).await.unwrap();

    link_up_with(&mut a_events, c_id).await;
    link_up_with(&mut c_events, a_id).await;
    assert!(neighbours(&a).await.contains(&c_id), "a lists c");
    assert!(neighbours(&c).await.contains(&a_id), "c lists a");
    let after = a.stats().await.unwrap().overlay;
    let c_after = c.stats().await.unwrap().overlay;
    assert!(
        after.sessions_initiated_via_mesh > before.sessions_initiated_via_mesh,
        "a started its session through the mesh: {before:?} -> {after:?}"
    );
    assert_eq!(
        after.sessions_initiated_via_server, before.sessions_initiated_via_server,
        "and not through the server"
    );
    assert!(
        c_after.sessions_answered_via_mesh > c_before.sessions_answered_via_mesh,
        "c answered an offer that came through the mesh: {c_before:?} -> {c_after:?}"
    );
    assert_eq!(
        c_after.sessions_answered_via_server,
        c_before.sessions_answered_via_server
    );

    for node in [a, b, c] {
        node.leave().await.unwrap();
    }
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_direct_to_itself_is_refused() {
    let door = Door::start(false).await;
    let (a, _events) = join(&door.url(), mesh_core::Config::default()).await;
    let result = a.connect_direct(a.id()).await;
    assert!(
        matches!(result, Err(Error::Core(mesh_core::Error::SelfAddressed))),
        "{result:?}"
    );
    a.leave().await.unwrap();
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_direct_without_any_route_is_refused() {
    let door = Door::start(false).await;
    let (a, _events) = join(&door.url(), mesh_core::Config::default()).await;
    // No link, and the bootstrap server gone: no way to carry an offer.
    door.stop().await;
    wait_until("a knows its server is gone", || async {
        (!a.stats().await.unwrap().server_connected).then_some(())
    })
    .await;
    let nobody = Keypair::generate().node_id();
    let result = a.connect_direct(nobody).await;
    assert!(
        matches!(result, Err(Error::Core(mesh_core::Error::NoRoute(id))) if id == nobody),
        "{result:?}"
    );
    a.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_direct_to_an_id_nobody_has_costs_no_session() {
    let door = Door::start(false).await;
    let overlay = mesh_core::Config::default().with_session_timeout(Duration::from_secs(2));
    let (a, _a_events) = join(&door.url(), overlay.clone()).await;
    let (b, _b_events) = join(&door.url(), overlay).await;
    wait_until("a and b are linked", || async {
        (neighbours(&a).await == [b.id()]).then_some(())
    })
    .await;
    let before = a.stats().await.unwrap().overlay;
    let nobody = Keypair::generate().node_id();
    // Accepted: an offer is sealed for its peer, so its key is looked up first; nobody
    // holds that id, the lookup finds no record, and no session is ever started.
    a.connect_direct(nobody).await.unwrap();
    let after = wait_until("the link to nobody is given up", || async {
        let now = a.stats().await.unwrap().overlay;
        (now.connects_unresolved > before.connects_unresolved).then_some(now)
    })
    .await;
    assert!(after.key_lookups > before.key_lookups, "{after:?}");
    assert_eq!(
        after.sessions_initiated_via_mesh, before.sessions_initiated_via_mesh,
        "{after:?}"
    );
    assert!(!neighbours(&a).await.contains(&nobody));
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    door.stop().await;
}

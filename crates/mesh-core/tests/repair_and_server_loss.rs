//! Repair: neighbours that leave are replaced, and with the server gone new links still
//! form through the mesh.

mod support;

use std::time::Duration;

use mesh_core::Event;
use support::{grown_mesh, test_config};

#[test]
fn a_leaving_node_is_replaced_by_its_neighbours() {
    let n = 10;
    let mut net = grown_mesh(n, test_config());
    let leaver = 4;
    let former: Vec<usize> = net.nodes[leaver]
        .neighbours()
        .iter()
        .map(|id| net.index[id])
        .collect();
    assert!(!former.is_empty());
    net.leave(leaver);
    for &j in &former {
        assert!(net.events.iter().any(|(k, e)| *k == j
            && matches!(e, Event::LinkDown { peer, .. } if *peer == net.id(leaver))));
    }
    let min = net.nodes[0].config().min_degree;
    assert!(net.run_until(Duration::from_secs(60), |net| {
        (0..n)
            .filter(|i| *i != leaver)
            .all(|i| net.degree(i) >= min)
    }));
    for i in (0..n).filter(|i| *i != leaver) {
        assert!(!net.nodes[i].neighbours().contains(&net.id(leaver)));
    }
}

#[test]
fn with_the_server_gone_links_still_form_through_the_mesh() {
    let n = 10;
    let mut net = grown_mesh(n, test_config());
    net.stop_server();
    let before: u64 = (0..n)
        .map(|i| net.nodes[i].stats().sessions_initiated_via_mesh)
        .sum();
    // Every node drops a neighbour (never leaving either side below the minimum degree, or
    // a node could be cut off with no server to come back through): the mesh must replace
    // them without the server.
    let min = net.nodes[0].config().min_degree;
    let mut dropped = 0;
    for i in 0..n {
        let peers = net.nodes[i].neighbours();
        let pick = peers
            .iter()
            .map(|p| net.index[p])
            .find(|j| net.degree(*j) > min);
        if let Some(j) = pick.filter(|_| net.degree(i) > min) {
            let (peer, now) = (net.id(j), net.now);
            net.nodes[i].disconnect(now, peer);
            net.drain(i);
            net.settle();
            dropped += 1;
        }
    }
    assert!(dropped >= n / 2, "dropped {dropped} links");
    net.settle();
    let ok = net.run_until(Duration::from_secs(60), |net| {
        (0..n).all(|i| net.degree(i) >= min)
    });
    let degrees: Vec<usize> = (0..n).map(|i| net.degree(i)).collect();
    assert!(ok, "degrees {degrees:?}");
    let after: u64 = (0..n)
        .map(|i| net.nodes[i].stats().sessions_initiated_via_mesh)
        .sum();
    assert!(
        after > before,
        "new sessions were signaled through the mesh"
    );
    let server_after = net.server_unicasts();
    // And messages still route.
    let (to, now) = (net.id(n - 1), net.now);
    net.nodes[0]
        .send(now, to, b"still routing".to_vec())
        .unwrap();
    net.drain(0);
    net.settle();
    assert_eq!(
        net.messages(n - 1).last().map(|m| m.1.clone()),
        Some(b"still routing".to_vec())
    );
    assert_eq!(
        net.server_unicasts(),
        server_after,
        "nothing went through the server"
    );
}

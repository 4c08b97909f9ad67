//! Joining: the server carries each node's one entry session; every other session is
//! signaled through the mesh. Deterministic, in virtual time.

mod support;

use std::time::Duration;

use support::{Net, grown_mesh, test_config};

#[test]
fn twelve_nodes_join_and_the_server_carries_one_session_each() {
    let n = 12;
    let net = grown_mesh(n, test_config());
    let mut door_sessions = 0;
    for i in 0..n {
        let stats = net.nodes[i].stats();
        assert!(
            stats.sessions_initiated_via_server <= 1,
            "node {i} used the server for {} sessions",
            stats.sessions_initiated_via_server
        );
        door_sessions += stats.sessions_initiated_via_server;
        assert!(net.degree(i) >= 2, "node {i} has degree {}", net.degree(i));
    }
    // Every node but the first came in through exactly one entry session...
    assert_eq!(door_sessions, (n - 1) as u64);
    // ...and every other link was signaled over the mesh.
    let mesh: u64 = (0..n)
        .map(|i| net.nodes[i].stats().sessions_initiated_via_mesh)
        .sum();
    let links: usize = (0..n).map(|i| net.degree(i)).sum::<usize>() / 2;
    assert!(
        mesh as usize >= links - (n - 1),
        "mesh sessions {mesh}, links {links}"
    );
    assert!(mesh > 0);
}

#[test]
fn the_same_seeds_give_the_same_mesh() {
    let a = grown_mesh(8, test_config());
    let b = grown_mesh(8, test_config());
    for i in 0..8 {
        assert_eq!(a.nodes[i].neighbours(), b.nodes[i].neighbours());
        assert_eq!(a.nodes[i].stats(), b.nodes[i].stats());
    }
}

#[test]
fn degree_never_exceeds_the_maximum() {
    let config = test_config()
        .with_target_degree(3)
        .with_max_degree(3)
        .with_entry_slots(0)
        .with_min_degree(1);
    let mut net = grown_mesh(10, config);
    net.run_for(Duration::from_secs(20));
    for i in 0..10 {
        assert!(net.degree(i) <= 3, "node {i}: {}", net.degree(i));
    }
}

#[test]
fn a_lone_first_node_waits_without_spinning() {
    let mut net = Net::new(1, test_config());
    net.join(0);
    net.run_for(Duration::from_secs(30));
    let stats = net.nodes[0].stats();
    assert_eq!(
        stats.sessions_initiated_via_server + stats.sessions_initiated_via_mesh,
        0
    );
}

#[test]
fn a_full_door_makes_room_for_a_newcomer() {
    // Target = max: nobody sheds links as redundant, so the door fills up.
    let config = test_config()
        .with_target_degree(3)
        .with_min_degree(1)
        .with_max_degree(3)
        .with_entry_slots(0);
    let mut net = Net::new(5, config);
    net.join_knowing(0, &[]);
    for i in 1..4 {
        net.join_knowing(i, &[0]);
        assert!(net.run_until(Duration::from_secs(10), |net| net.degree(i) >= 1));
    }
    // Node 0 was the door of three nodes: it is at its maximum degree, and they have linked
    // among themselves through the mesh.
    assert!(
        net.run_until(Duration::from_secs(30), |net| net.degree(0) == 3
            && (1..4).all(|i| net.degree(i) >= 2))
    );
    // A newcomer that only knows node 0 still gets in through it, at the first try.
    net.join_knowing(4, &[0]);
    assert!(net.run_until(Duration::from_secs(10), |net| net.degree(4) >= 1));
    let newcomer = net.nodes[4].stats();
    assert_eq!(newcomer.sessions_initiated_via_server, 1);
    assert_eq!(newcomer.sessions_rejected, 0);
    assert_eq!(net.nodes[0].stats().links_shed, 1);
    assert!(net.nodes[0].neighbours().contains(&net.id(4)));
    assert!(net.degree(0) <= 3);
}

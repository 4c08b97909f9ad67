//! A node given several bootstrap servers (a fleet sharing rooms): newcomers spread over
//! them by id, a server down from the start costs a newcomer one refused attempt, and the
//! nodes of a server that dies re-register at the next one in turn and rejoin the mesh.
//! On the seeded emulator with latencies, so the counts are exact and the same every run.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_core::Event;
use mesh_emu::Latencies;
use mesh_proto::ServerUrl;
use support::{Net, test_config};

const MS: u64 = 1_000_000;
const N: usize = 30;

fn fleet() -> Vec<ServerUrl> {
    (0..3)
        .map(|k| format!("ws://b{k}.fleet/ws").parse().expect("a URL"))
        .collect()
}

fn latencies() -> Latencies {
    Latencies {
        server: (20 * MS, 80 * MS),
        link: (10 * MS, 100 * MS),
        link_setup: 4,
    }
}

/// A network of `N` nodes given the three servers of [`fleet`].
fn fleet_net() -> Net {
    Net::with_latencies(N, test_config().with_bootstraps(fleet()), latencies())
}

/// The bootstrap servers node `i` registered at (`ServerConnected`, not a door), in order,
/// from the `from`-th event on.
fn registrations(net: &Net, i: usize, from: usize) -> Vec<ServerUrl> {
    net.events[from..]
        .iter()
        .filter(|(j, _)| *j == i)
        .filter_map(|(_, e)| match e {
            Event::ServerConnected { server, door } if !door => Some(server.clone()),
            _ => None,
        })
        .collect()
}

/// Starts every node, one every 100 ms, and waits until each has a link (at most 30 s
/// after the last start). Returns how long after the last start that took.
fn start_all(net: &mut Net) -> Duration {
    for i in 0..N {
        net.start(i);
        if i + 1 < N {
            net.run_for(Duration::from_millis(100));
        }
    }
    let last = net.now;
    let ok = net.run_until(Duration::from_secs(30), |net| {
        (0..N).all(|i| net.degree(i) >= 1)
    });
    assert!(
        ok,
        "nodes without a link 30 s after the last start: {:?}",
        (0..N).filter(|i| net.degree(*i) == 0).collect::<Vec<_>>()
    );
    net.now.saturating_duration_since(last)
}

fn assert_one_component(net: &Net) {
    let components = net.components();
    assert_eq!(
        components.len(),
        1,
        "components: {:?}",
        components.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(components[0].len(), N);
}

#[test]
fn newcomers_spread_over_the_fleet_by_id() {
    let mut net = fleet_net();
    let servers = fleet();
    start_all(&mut net);
    let mut counts: BTreeMap<ServerUrl, usize> = BTreeMap::new();
    for i in 0..N {
        let first = registrations(&net, i, 0);
        let expected = net.nodes[i].config().first_bootstrap(&net.id(i)).cloned();
        // Its first registration is at its id's server, and it stays there.
        assert_eq!(first.first(), expected.as_ref(), "node {i}: {first:?}");
        assert_eq!(first.len(), 1, "node {i} registered again: {first:?}");
        assert_eq!(net.bootstrap_of(i), expected.as_ref(), "node {i}");
        *counts.entry(first[0].clone()).or_default() += 1;
    }
    let counts: Vec<usize> = servers
        .iter()
        .map(|s| counts.get(s).copied().unwrap_or(0))
        .collect();
    // The seeded ids (the same every run): every server takes newcomers.
    eprintln!("first registrations per server: {counts:?}");
    assert_eq!(counts, [15, 7, 8]);
    // One mesh across the fleet: the servers share the room.
    assert_one_component(&net);
}

#[test]
fn with_one_server_down_from_the_start_every_node_joins_through_the_others() {
    let mut net = fleet_net();
    let servers = fleet();
    let dead = servers[1].clone();
    net.kill_bootstrap(&dead);
    let waited = start_all(&mut net);
    let mut moved = 0;
    for i in 0..N {
        let seen = registrations(&net, i, 0);
        let first = net.nodes[i].config().first_bootstrap(&net.id(i)).cloned();
        assert!(!seen.contains(&dead), "node {i} registered at the dead one");
        let expected = if first.as_ref() == Some(&dead) {
            // Refused there: the next in turn, at once.
            moved += 1;
            servers[2].clone()
        } else {
            first.expect("a first bootstrap server")
        };
        assert_eq!(seen, [expected], "node {i}");
    }
    eprintln!(
        "{moved} nodes moved on from the dead server; all linked {waited:?} after the last start"
    );
    assert!(
        moved >= 5,
        "{moved} nodes had the dead server as their first"
    );
    assert_one_component(&net);
    // Every node linked soon: a refusal costs one latency, not a pause.
    assert!(
        waited <= Duration::from_secs(3),
        "all linked {waited:?} after the last start"
    );
}

#[test]
fn the_nodes_of_a_dead_server_spread_over_the_others_and_rejoin_the_mesh() {
    let mut net = fleet_net();
    let servers = fleet();
    let dead = servers[0].clone();
    // Every node starts at once; the server dies while some of its nodes are registered
    // there with no link and no session yet (they need a server).
    for i in 0..N {
        net.start(i);
    }
    let stranded = |net: &Net| -> Vec<usize> {
        (0..N)
            .filter(|&i| {
                net.bootstrap_of(i) == Some(&dead)
                    && net.degree(i) == 0
                    && !net.opened.iter().any(|(j, _, _)| *j == i)
            })
            .collect()
    };
    assert!(
        net.run_until(Duration::from_secs(5), |net| stranded(net).len() >= 3),
        "never three nodes at the server without a link"
    );
    let stranded = stranded(&net);
    let (killed_at, from) = (net.now, net.events.len());
    net.kill_bootstrap(&dead);
    let ok = net.run_until(Duration::from_secs(20), |net| {
        (0..N).all(|i| net.degree(i) >= 1) && net.components().len() == 1
    });
    assert!(
        ok,
        "20 s after the kill: degrees {:?}, components {:?}",
        (0..N).map(|i| net.degree(i)).collect::<Vec<_>>(),
        net.components()
    );
    let took = net.now.saturating_duration_since(killed_at);
    assert_one_component(&net);
    for &i in &stranded {
        // Lost (its `Welcome` may still come in first): another server after one pause, the
        // one its id says: 1 or 2 past the dead one, by the id's second digit in base 3
        // (`loss_step`), so a dead server's nodes spread over the rest.
        let lost = net.events[from..].iter().position(|(j, e)| {
            *j == i && matches!(e, Event::ServerDisconnected { server } if *server == dead)
        });
        let lost = lost.unwrap_or_else(|| panic!("node {i} never heard its server is gone"));
        let again = registrations(&net, i, from + lost);
        let id = u128::from_be_bytes(*net.id(i).as_bytes());
        let step = 1 + (id / 3 % 2) as usize;
        assert_eq!(again.first(), Some(&servers[step]), "node {i}: {again:?}");
    }
    for i in 0..N {
        assert_ne!(net.bootstrap_of(i), Some(&dead), "node {i}");
    }
    assert!(
        took <= Duration::from_secs(5),
        "one component after {took:?}"
    );
    eprintln!(
        "{} stranded nodes re-registered; one component {took:?} after the kill",
        stranded.len()
    );
}

//! Hostile nodes and rooms on the memory transport: 100 nodes, 10 of them hostile (seed 1),
//! or spread over 4 rooms. No forgery reaches an honest node's application under any
//! attack; what the honest nodes still deliver is asserted against floors a little under
//! the figures measured (the emulator is deterministic: seed 1 gives one outcome), so that
//! a change of the core that makes the mesh more fragile under attack fails here.

use std::time::Duration;

use mesh_sim::report::Attack;
use mesh_sim::{AttackKind, Hostile, Report, Scenario, TransportKind};

/// 100 nodes joining at 100/s, then unicasts (20/s) and a broadcast every second until 1 s
/// before the end, at 8 s of virtual time.
fn scenario() -> Scenario {
    Scenario {
        nodes: 100,
        transport: TransportKind::Memory,
        join_rate: 100.0,
        duration: Duration::from_secs(8),
        seed: 1,
        unicast_rate: 20.0,
        broadcast_every: Some(Duration::from_secs(1)),
        ..Scenario::default()
    }
}

/// The run with 10 % of the nodes hostile, and its `attack`, with no forgery delivered.
fn attacked(attack: AttackKind) -> (Report, Attack) {
    attacked_with_seed(attack, 1)
}

/// [`attacked`] with another seed (which nodes are hostile, and everything random).
fn attacked_with_seed(attack: AttackKind, seed: u64) -> (Report, Attack) {
    let scenario = Scenario {
        hostile: Some(Hostile {
            fraction: 0.1,
            attack,
            spam: 100,
        }),
        seed,
        ..scenario()
    };
    let report = mesh_sim::memory::run(&scenario, false);
    let summary = report.summary();
    let a = report
        .attack
        .clone()
        .unwrap_or_else(|| panic!("no attack in the report:\n{summary}"));
    assert_eq!((a.hostile, a.kind), (10, attack), "{a:#?}");
    assert_eq!(a.forged_delivered, 0, "a forgery was delivered: {a:#?}");
    assert!(a.honest_unicast.sent > 40, "{a:#?}");
    (report, a)
}

/// Delivered over sent, of the honest unicasts.
fn delivery(a: &Attack) -> f64 {
    a.honest_unicast.delivered as f64 / a.honest_unicast.sent as f64
}

/// Over seeds 1-3: while the mesh forms, one seed's honest delivery swings by a fifth
/// either way with any change to the core (seed 1 went 52 -> 39 of 63 with the change that
/// took 24 seeds from 1 205 to 1 292 of 1 557, docs/benchmarks.md §14.19), so the floors
/// are on the three together.
#[test]
fn forgeries_cost_the_forger_its_links_and_reach_no_application() {
    let (mut delivered, mut sent, mut coverage) = (0, 0, 0.0);
    for seed in 1..=3 {
        let (_, a) = attacked_with_seed(AttackKind::Forge, seed);
        assert!(a.frames_rewritten > 100, "{a:#?}");
        assert!(a.links_dropped_forged > 0 && a.forged_floods > 0, "{a:#?}");
        assert_eq!(a.links_dropped_forged_honest, 0, "{a:#?}");
        assert!(a.forged_origins + a.seal_failures > 0, "{a:#?}");
        delivered += a.honest_unicast.delivered;
        sent += a.honest_unicast.sent;
        coverage += a.honest_broadcast_min_coverage / 3.0;
    }
    // Measured (seeded): 166 of 197 (the forgers break what they relay; an honest node
    // whose links went to forgers drops them all; 180 before §14.19), mean min coverage
    // 0.43: the first broadcast, sent while the mesh forms, reaches some honest nodes only
    // (0.60 before; over 24 seeds it swings both ways, §14.19). Issue 13's aim, every
    // honest node, is not met. Floors against regressions.
    assert!(
        delivered as f64 >= 0.75 * sent as f64,
        "{delivered} of {sent}"
    );
    assert!(coverage >= 0.2, "mean min coverage {coverage}");
}

#[test]
fn droppers_lose_what_they_relay_and_nothing_else() {
    let (_, a) = attacked(AttackKind::Drop);
    assert!(a.frames_dropped > 100, "{a:#?}");
    assert_eq!(a.links_dropped_forged + a.links_over_budget, 0, "{a:#?}");
    // Measured: 36 of 63 (no end-to-end acknowledgement: a unicast through a dropper is
    // lost); broadcasts go around them.
    assert!(delivery(&a) >= 0.5, "{a:#?}");
    assert_eq!(a.honest_broadcast_min_coverage, 1.0, "{a:#?}");
}

/// One node in five drops every unicast it relays, floods for one node included. Reliable
/// unicasts whose routed tries go unacknowledged end in a flood for their destination, and
/// key lookups whose answers never come end in key requests by flood: every reliable
/// unicast sent is acknowledged (seeded: 77 of 78 honest ones arrive, with 27 last tries
/// and 22 key requests by flood; the one lost never left: its key did not come within the
/// key wait. 69 of 78 before the floods, docs/benchmarks.md §14.14).
#[test]
fn reliable_unicasts_get_round_one_dropper_in_five() {
    let scenario = Scenario {
        nodes: 100,
        join_rate: 50.0,
        settle: Duration::from_secs(5),
        duration: Duration::from_secs(25),
        reliable: true,
        hostile: Some(Hostile {
            fraction: 0.2,
            attack: AttackKind::Drop,
            spam: 0,
        }),
        ..scenario()
    };
    let report = mesh_sim::memory::run(&scenario, false);
    let a = report.attack.clone().expect("an attack in the report");
    let r = report.routing;
    assert_eq!((a.hostile, a.forged_delivered), (20, 0), "{a:#?}");
    assert!(a.frames_dropped > 100, "{a:#?}");
    assert!(r.reliable.flooded > 0 && r.key_floods > 0, "{r:#?}");
    assert!(a.honest_unicast.sent > 40, "{a:#?}");
    assert!(
        a.honest_unicast.delivered + 1 >= a.honest_unicast.sent,
        "{a:#?}\n{r:#?}"
    );
    assert_eq!(r.reliable.acked, r.reliable.sent, "{r:#?}");
    assert_eq!(r.reliable.lost, 0, "{r:#?}");
}

/// The most floods of made-up origins `honest` nodes can deliver in the scenario: each at
/// most its stranger budget for broadcasts (docs/protocol.md §10.11), a burst and a rate.
fn stranger_bound(honest: u64) -> u64 {
    let budget = mesh_core::Config::default().stranger_budget;
    let each = budget.burst + budget.per_second * scenario().duration.as_secs_f64();
    honest * each as u64
}

#[test]
fn floods_of_made_up_nodes_are_bounded_by_the_budgets() {
    let (_, a) = attacked(AttackKind::Flood);
    assert_eq!(a.spam_sent, 10 * 100, "{a:#?}");
    // Each of the 90 honest nodes delivers each at most once, and at most its budget.
    assert!(a.spam_delivered <= stranger_bound(90), "{a:#?}");
    assert!(a.floods_over_stranger_budget > 0, "{a:#?}");
    assert!(delivery(&a) >= 0.95, "{a:#?}");
    assert_eq!(a.honest_broadcast_min_coverage, 1.0, "{a:#?}");
}

#[test]
fn one_node_flooding_at_line_rate_costs_each_honest_node_at_most_its_stranger_budget() {
    let scenario = Scenario {
        hostile: Some(Hostile {
            fraction: 0.01,
            attack: AttackKind::Flood,
            spam: 2_000,
        }),
        ..scenario()
    };
    let report = mesh_sim::memory::run(&scenario, false);
    let summary = report.summary();
    let a = report.attack.clone().expect("an attack in the report");
    // At 500/s from its first link until the traffic stops, 1 s before the end.
    assert_eq!(a.hostile, 1, "{summary}");
    assert!(a.spam_sent > 1_500, "{summary}");
    assert_eq!(a.forged_delivered, 0, "{a:#?}");
    // Without the stranger budget each of the 99 delivered nearly all 2 000.
    assert!(a.spam_delivered <= stranger_bound(99), "{a:#?}");
    assert!(a.floods_over_stranger_budget > 0, "{a:#?}");
    // Honest traffic is not what pays: every honest broadcast reaches every honest node.
    assert_eq!(a.honest_broadcast_min_coverage, 1.0, "{a:#?}");
    assert!(delivery(&a) >= 0.99, "{a:#?}");
    assert_eq!(a.links_over_budget_honest, 0, "{a:#?}");
}

#[test]
fn poisoned_neighbour_lists_cost_the_poisoner_its_links() {
    let (_, a) = attacked(AttackKind::Poison);
    assert!(a.frames_rewritten > 100, "{a:#?}");
    assert!(a.forged_records > 0 && a.links_dropped_forged > 0, "{a:#?}");
    assert_eq!(a.links_dropped_forged_honest, 0, "{a:#?}");
    // Measured (seeded): 53 of 63, min coverage 0.236: the first broadcast, sent while the
    // mesh forms (51 of 63 and 0.775 before peers reported unreachable were kept out of the
    // contacts, 56 and 0.022 before rewiring went only to peers seen alive, 55 and 0.191
    // before a poisoner caught lost its earlier word: benchmarks §14.11, §14.13, §14.16);
    // made-up records are valid, so honest nodes do spend sessions on them (within the
    // session budget), and the poisoners' links are dropped (issue 13's aim is not met:
    // benchmarks §14). Floors against regressions.
    assert!(delivery(&a) >= 0.8, "{a:#?}");
    assert!(a.honest_broadcast_min_coverage >= 0.015, "{a:#?}");
}

#[test]
fn mixed_attacks_deliver_no_forgery() {
    let (_, a) = attacked(AttackKind::Mixed);
    assert!(a.frames_dropped > 0 && a.frames_rewritten > 0, "{a:#?}");
    assert!(a.spam_sent > 0, "{a:#?}");
}

#[test]
fn rooms_share_nothing() {
    let scenario = Scenario {
        rooms: 4,
        ..scenario()
    };
    let report = mesh_sim::memory::run(&scenario, false);
    let rooms = report.rooms.clone().expect("rooms in the report");
    assert_eq!(rooms.k, 4);
    assert_eq!(rooms.cross_room_deliveries, 0, "{rooms:#?}");
    assert!(rooms.cross_room_attempts.sent >= 10, "{rooms:#?}");
    assert_eq!(rooms.cross_room_attempts.delivered, 0);
    assert_eq!(rooms.per_room.len(), 4);
    for room in &rooms.per_room {
        assert_eq!(room.nodes, 25, "{rooms:#?}");
        assert!(room.unicast.sent > 10, "{rooms:#?}");
        assert_eq!(room.unicast.delivered, room.unicast.sent, "{rooms:#?}");
        assert_eq!(room.broadcast_min_coverage, 1.0, "{rooms:#?}");
    }
    // One mesh per room: rooms never link.
    assert_eq!(report.components, 4, "{}", report.summary());
}

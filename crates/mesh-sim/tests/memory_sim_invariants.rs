//! The memory transport (the pure overlay cores in the seeded emulator, virtual time): with no
//! churn 500 nodes join one mesh and all traffic arrives; a seed fixes the report; a kill
//! leaves exactly the survivors alive, and they repair into one mesh. Timings are not
//! asserted.

use std::time::Duration;

use mesh_sim::{Kill, Report, Scenario, TransportKind};

/// `nodes` at degree 8 joining at 250/s, then, 2 s after the last has linked, unicasts (20/s)
/// and a broadcast every second until 1 s before the end, at 8 s of virtual time.
fn scenario(nodes: usize, seed: u64) -> Scenario {
    Scenario {
        nodes,
        transport: TransportKind::Memory,
        degree: 8,
        join_rate: 250.0,
        duration: Duration::from_secs(8),
        seed,
        churn_per_min: 0.0,
        unicast_rate: 20.0,
        broadcast_every: Some(Duration::from_secs(1)),
        ..Scenario::default()
    }
}

/// The report as JSON, without the two figures that depend on the machine, not the seed.
fn seeded_part(report: &Report) -> serde_json::Value {
    let mut report = report.clone();
    report.wall_s = 0.0;
    report.rss_mb_peak = 0.0;
    serde_json::to_value(&report).expect("a report serializes")
}

#[test]
fn five_hundred_nodes_without_churn_join_one_mesh_and_deliver_everything() {
    let report = mesh_sim::memory::run(&scenario(500, 1), false);
    let summary = report.summary();

    assert_eq!(
        report.join_samples_ms.len(),
        500,
        "everyone linked:\n{summary}"
    );
    assert_eq!(report.nodes_alive, 500, "{summary}");
    assert_eq!(report.components, 1, "{summary}");
    assert!(report.unicast.sent > 0, "{summary}");
    // Traffic starts once the mesh has had `settle` (2 s) to take its shape: greedy
    // routing then has no dead end, and nothing is lost.
    assert_eq!(report.unicast.delivered, report.unicast.sent, "{summary}");
    assert!(report.broadcast.sent > 0, "{summary}");
    assert_eq!(report.broadcast.min_coverage, 1.0, "{summary}");
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_another() {
    let small = |seed| Scenario {
        duration: Duration::from_secs(4),
        ..scenario(30, seed)
    };
    let first = seeded_part(&mesh_sim::memory::run(&small(3), false));
    let again = seeded_part(&mesh_sim::memory::run(&small(3), false));
    assert!(
        first == again,
        "seed 3 gave two different reports:\n{first:#}\n{again:#}"
    );
    let other = seeded_part(&mesh_sim::memory::run(&small(4), false));
    assert_ne!(first, other, "seeds 3 and 4 gave the same report");
    assert_eq!(first["seed"], 3);
}

#[test]
fn killing_a_fifth_of_the_nodes_leaves_four_fifths_that_repair_into_one_mesh() {
    // The kill at 3 s; the survivors hear of it `KILL_DETECTION_NS` (5 s) later and have
    // 4 s more to repair.
    let at = Duration::from_secs(3);
    let detection = Duration::from_nanos(mesh_sim::memory::KILL_DETECTION_NS);
    let s = Scenario {
        kill: Some(Kill { fraction: 0.2, at }),
        duration: at + detection + Duration::from_secs(4),
        ..scenario(100, 5)
    };
    let report = mesh_sim::memory::run(&s, false);
    let summary = report.summary();

    assert_eq!(report.nodes_alive, 80, "{summary}");
    assert_eq!(report.degrees.len(), 80, "{summary}");
    assert_eq!(
        report.timeline.last().map(|t| t.nodes_alive),
        Some(80),
        "{summary}"
    );
    assert_eq!(report.components, 1, "{summary}");
    let min = s.overlay().min_degree;
    assert!(
        report.degrees.iter().all(|d| *d >= min),
        "every survivor back to its minimum degree: {:?}",
        report.degrees
    );
}

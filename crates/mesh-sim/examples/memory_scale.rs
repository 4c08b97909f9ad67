//! Runs the memory transport at scale and prints the summary plus the figures it hides.
//!
//! ```text
//! cargo run --release -p mesh-sim --example memory_scale -- NODES [DEGREE] [JOIN_RATE] [DURATION_S] [SEED] [progress]
//! ```
//!
//! Defaults: 1000 nodes, degree 8, 500 joins/s, 30 s, seed 1. Environment knobs for
//! failure scenarios: `KILL=fraction@seconds`, `KILL_SERVER=seconds`, `CHURN=percent_per_min`,
//! `UNICAST_RATE`, `REPORT_JSON=path`.

use std::time::Duration;

use mesh_sim::{Kill, Scenario, TransportKind};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kill = std::env::var("KILL").ok().and_then(|v| {
        let (fraction, at) = v.split_once('@')?;
        Some(Kill {
            fraction: fraction.parse().ok()?,
            at: Duration::from_secs_f64(at.parse().ok()?),
        })
    });
    let scenario = Scenario {
        nodes: arg(&args, 0, 1000),
        transport: TransportKind::Memory,
        degree: arg(&args, 1, 8),
        join_rate: arg(&args, 2, 500.0),
        duration: Duration::from_secs_f64(arg(&args, 3, 30.0)),
        seed: arg(&args, 4, 1),
        churn_per_min: env("CHURN").unwrap_or(0.0),
        kill,
        kill_bootstrap_at: env::<f64>("KILL_SERVER").map(Duration::from_secs_f64),
        unicast_rate: env("UNICAST_RATE").unwrap_or(20.0),
        ..Scenario::default()
    };
    let progress = args.get(5).is_some_and(|a| a == "progress");
    let report = mesh_sim::memory::run(&scenario, progress);
    println!("{scenario:?}\n");
    println!("{}", report.summary());
    let degrees = &report.degrees;
    let min_degree = scenario.overlay().min_degree;
    let below = degrees.iter().filter(|d| **d < min_degree).count();
    let below_target = degrees.iter().filter(|d| **d < scenario.degree).count();
    let mean = degrees.iter().sum::<usize>() as f64 / degrees.len().max(1) as f64;
    let mut histogram = std::collections::BTreeMap::new();
    for d in degrees {
        *histogram.entry(*d).or_insert(0usize) += 1;
    }
    println!(
        "degree: mean {mean:.2}, below min {below}, below target {below_target}, histogram {histogram:?}"
    );
    let mut hops = std::collections::BTreeMap::new();
    for h in &report.hop_samples {
        *hops.entry(*h).or_insert(0usize) += 1;
    }
    println!("hops histogram {hops:?}");
    println!(
        "joined {} of {}; join p50/p99 {:.1}/{:.1} ms; full degree p50/p99 {:.1}/{:.1} ms",
        report.join_samples_ms.len(),
        report.nodes,
        report.join_ms.p50,
        report.join_ms.p99,
        report.full_degree_ms.p50,
        report.full_degree_ms.p99
    );
    if let Some(last) = report.timeline.last() {
        println!(
            "signals via server {}, via mesh {} (at {:.0} s)",
            last.signals_via_server, last.signals_via_mesh, last.t
        );
    }
    println!(
        "wall {:.2} s, peak RSS {:.0} MB",
        report.wall_s, report.rss_mb_peak
    );
    if let Ok(path) = std::env::var("REPORT_JSON") {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
}

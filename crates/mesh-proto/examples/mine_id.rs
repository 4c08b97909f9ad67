//! How long mining a key for the id puzzle takes (docs/benchmarks.md): for each
//! difficulty given as `d:runs`, mines `runs` keys with
//! `Keypair::generate_with_difficulty(d)` and prints the mean, min and max wall time.
//!
//! `cargo run --release -p mesh-proto --example mine_id -- 8:200 12:50 16:10`

use std::time::{Duration, Instant};

use mesh_proto::identity::Keypair;
use mesh_proto::puzzle;

fn main() {
    for arg in std::env::args().skip(1) {
        let (d, runs) = arg.split_once(':').expect("d:runs");
        let (d, runs): (u32, u32) = (d.parse().expect("d"), runs.parse().expect("runs"));
        let mut times = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let key = Keypair::generate_with_difficulty(d).expect("d <= 24");
            times.push(start.elapsed());
            assert!(puzzle::meets(&key.node_id(), d));
        }
        let mean = times.iter().sum::<Duration>() / runs;
        let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        println!(
            "d = {d:2}: {runs} keys, mean {:.1} ms, min {:.1} ms, max {:.1} ms",
            mean.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}

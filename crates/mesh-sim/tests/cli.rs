//! The `mesh-sim` binary: its help names every flag, a bad value says what is expected,
//! and a run writes `report.json` (with the fixed field names) and `summary.md`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mesh_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh-sim"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run mesh-sim")
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("mesh-sim-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let top = mesh_sim(&["--help"]);
    assert!(top.status.success());
    let top = String::from_utf8_lossy(&top.stdout);
    for command in ["run", "demo"] {
        assert!(
            top.contains(command),
            "top-level help lacks `{command}`:\n{top}"
        );
    }
    let run = mesh_sim(&["run", "--help"]);
    assert!(run.status.success());
    let help = String::from_utf8_lossy(&run.stdout);
    for flag in [
        "--nodes",
        "--transport",
        "--degree",
        "--join-rate",
        "--duration",
        "--seed",
        "--churn",
        "--kill ",
        "--kill-bootstrap-at",
        "--settle",
        "--unicast-rate",
        "--broadcast-every",
        "--out",
        "--no-progress",
    ] {
        assert!(help.contains(flag), "`run --help` lacks {flag}:\n{help}");
    }
    for default in ["[default: 100]", "[default: webrtc]", "[default: sim-out]"] {
        assert!(
            help.contains(default),
            "`run --help` lacks {default}:\n{help}"
        );
    }
    let demo = mesh_sim(&["demo", "--help"]);
    let demo = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.contains("--out") && demo.contains("--no-progress"),
        "{demo}"
    );
}

#[test]
fn a_bad_kill_value_says_what_is_expected() {
    for bad in ["0.2", "2@10", "half@10", "0.2@soon"] {
        let out = mesh_sim(&["run", "--kill", bad, "--transport", "memory"]);
        assert!(!out.status.success(), "`--kill {bad}` was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--kill") && err.contains("FRACTION@SECS") && err.contains("0.2@10"),
            "`--kill {bad}` gave an unclear error:\n{err}"
        );
    }
}

#[test]
fn a_memory_run_writes_the_report_and_the_summary() {
    let dir = TempDir::new("cli");
    let out_dir = dir.0.join("out");
    let out = mesh_sim(&[
        "run",
        "--transport",
        "memory",
        "--nodes",
        "50",
        "--duration",
        "5",
        "--no-progress",
        "--out",
        out_dir.to_str().expect("utf-8 temp path"),
    ]);
    assert!(
        out.status.success(),
        "mesh-sim failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("report written to"), "{stdout}");

    let json = std::fs::read_to_string(out_dir.join("report.json")).expect("report.json");
    let report: serde_json::Value = serde_json::from_str(&json).expect("report.json is JSON");
    let fields: &[(&str, &[&str])] = &[
        ("nodes", &[]),
        ("transport", &[]),
        ("degree_target", &[]),
        ("join_ms", &["p50", "p90", "p99"]),
        ("full_degree_ms", &[]),
        ("link_setup_ms", &["p50", "p99"]),
        ("signaling", &["sessions", "via_server", "via_mesh"]),
        (
            "unicast",
            &[
                "sent",
                "delivered",
                "hops_mean",
                "hops_p99",
                "latency_ms_p50",
            ],
        ),
        (
            "routing",
            &[
                "dropped_ttl",
                "dropped_no_route",
                "unreachable_reported",
                "lookups",
                "lookup_answers",
                "key_lookups",
                "sends_unresolved",
                "key_floods",
                "reliable",
            ],
        ),
        (
            "broadcast",
            &["sent", "min_coverage", "duplicates_per_node_mean"],
        ),
        ("components", &[]),
        ("nodes_alive", &[]),
        ("rss_mb_peak", &[]),
        ("cpu_idle_pct_of_one_core", &[]),
    ];
    for (field, inner) in fields {
        let value = report
            .get(field)
            .unwrap_or_else(|| panic!("report.json lacks `{field}`:\n{json}"));
        for key in *inner {
            assert!(
                value.get(key).is_some(),
                "report.json lacks `{field}.{key}`:\n{json}"
            );
        }
    }
    assert_eq!(report["nodes"], 50);
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).expect("summary.md");
    assert!(summary.contains("| 50 nodes"), "{summary}");
}

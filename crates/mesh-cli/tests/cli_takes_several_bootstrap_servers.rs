//! `mesh-node --bootstrap` takes several URLs (repeated, or comma-separated, also in
//! MESH_BOOTSTRAP): servers of one fleet. A bad one is refused by name before anything
//! starts; a node whose first pick is a closed port joins at the live server after it.

mod support;

use std::process::{Output, Stdio};

use mesh_proto::ServerUrl;
use mesh_proto::identity::Keypair;
use support::{BIN, serve, spawn_with};

/// `mesh-node` with `args` and `env`, stdin closed: its output once it exits.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .args(["--bind", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A URL where nothing listens: a port that was free a moment ago.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("ws://{}/ws", listener.local_addr().unwrap())
}

#[test]
fn help_explains_the_fleet_use() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for words in [
        "several servers of one",
        "fleet: the node spreads over them and moves to the next when one fails",
        "MESH_BOOTSTRAP",
        "comma",
    ] {
        assert!(
            help.contains(words),
            "--help does not say {words:?}:\n{help}"
        );
    }
}

#[test]
fn a_bad_bootstrap_url_is_refused_by_name() {
    let refused = |out: Output, bad: &str| {
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{bad} is not a bootstrap server URL")),
            "{err}"
        );
        // Refused before the node starts: it printed no id.
        assert!(out.stdout.is_empty(), "{out:?}");
    };
    let good = "ws://127.0.0.1:1/ws";
    // Comma-separated, repeated, and in the environment.
    let bad = "http://127.0.0.1:8080/ws";
    refused(run(&["--bootstrap", &format!("{good},{bad}")], &[]), bad);
    let bad = "127.0.0.1:8080";
    refused(run(&["--bootstrap", good, "--bootstrap", bad], &[]), bad);
    let bad = "ws://";
    let both = format!("{good},{bad}");
    refused(run(&[], &[("MESH_BOOTSTRAP", &both)]), bad);
}

#[test]
fn when_no_bootstrap_server_takes_the_node_the_error_names_each() {
    let (a, b) = (closed_url(), closed_url());
    let out = run(&["--bootstrap", &format!("{a},{b}")], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot join the mesh through {a}, {b}")),
        "{err}"
    );
    assert!(err.contains("no bootstrap server took the node"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_first_bootstrap_server_is_closed_joins_at_the_next() {
    let (mut a, live) = serve(&["--degree", "2"]).await;
    let closed = closed_url();
    // A key whose id picks the closed one first (one key in two does).
    let fleet: Vec<ServerUrl> = [&closed, &live].map(|u| u.parse().unwrap()).to_vec();
    let overlay = mesh_core::Config::default().with_bootstraps(fleet.clone());
    let key = std::iter::repeat_with(Keypair::generate)
        .find(|k| overlay.first_bootstrap(&k.node_id()) == Some(&fleet[0]))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("mesh-cli-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.key");
    let seed: String = key.to_seed().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, format!("{seed}\n")).unwrap();

    let args = [
        "--bootstrap",
        closed.as_str(),
        "--bootstrap",
        live.as_str(),
        "--key",
        path.to_str().unwrap(),
        "--degree",
        "2",
        "-v",
    ];
    let mut b = spawn_with(&args).await;
    assert_eq!(b.id, key.node_id().to_string());
    // It tried the closed one first, then registered at the live one.
    b.find_in_log("registering failed").await;
    assert!(
        b.log()
            .iter()
            .any(|l| l.contains("registering failed") && l.contains(&closed)),
        "{:?}",
        b.log()
    );
    assert_eq!(b.peers(1).await, [a.id.clone()]);
    assert_eq!(a.peers(1).await, [b.id.clone()]);
    let stats = b.stats_json().await;
    assert_eq!(stats["server_connected"], true, "{stats}");
    assert_eq!(stats["server_registrations"], 1, "{stats}");
    b.quit().await;
    a.quit().await;
    let _ = std::fs::remove_dir_all(&dir);
}

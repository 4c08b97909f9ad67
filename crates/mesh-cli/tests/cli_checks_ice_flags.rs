//! The `mesh-node` binary checks its ICE flags at start: a URL webrtc-rs cannot parse, a
//! `stun:` URL given to `--turn` (or the reverse), `--turn` without credentials,
//! `--relay-only` without `--turn` and `--serve-stun` without `--serve` are refused before
//! anything runs; TURN over TCP is accepted with a warning that webrtc-rs 0.21.1 does not
//! use it. The door flags are checked the same way: `--door` on a wildcard address without
//! `--door-url`, `--door-url` without `--door` or not a ws:// URL, `--door` with `--serve`.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-node");
/// Nothing listens here: a run that gets past the flags fails to join, quickly.
const NOWHERE: &str = "ws://127.0.0.1:1/ws";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--bootstrap", NOWHERE, "--bind", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run mesh-node")
}

/// Runs with `args` and checks that they are refused before the node starts (no NodeId
/// printed, no join attempted), with `message` on stderr.
fn refused(args: &[&str], message: &str) {
    let out = run(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{args:?} accepted");
    assert!(stdout.is_empty(), "{args:?}: the node started: {stdout}");
    assert!(!stderr.contains("cannot join"), "{args:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "{args:?}: expected {message:?} in {stderr}"
    );
}

#[test]
fn door_flags_are_checked() {
    refused(
        &["--door", "0.0.0.0:0"],
        "give the URL neighbours should use with --door-url",
    );
    refused(&["--door-url", "ws://127.0.0.1:1/ws"], "--door");
    refused(
        &[
            "--door",
            "127.0.0.1:0",
            "--door-url",
            "http://127.0.0.1:1/ws",
        ],
        "invalid server URL",
    );
    refused(
        &["--door", "127.0.0.1:0", "--serve", "127.0.0.1:0"],
        "cannot be used with",
    );
}

#[test]
fn malformed_urls_are_refused() {
    for url in [
        "stun.example.org:3478",
        "stun://stun.example.org:3478",
        "stun:",
        "stun:192.0.2.1:99999",
        "stun:192.0.2.1?transport=udp",
    ] {
        refused(&["--stun", url], "not a STUN/TURN URL");
    }
    refused(
        &[
            "--turn",
            "turn:192.0.2.1:3478?transport=sctp",
            "--turn-user",
            "u",
            "--turn-password",
            "p",
        ],
        "not a STUN/TURN URL",
    );
}

#[test]
fn each_flag_takes_its_own_kind_of_server() {
    refused(
        &[
            "--turn",
            "stun:192.0.2.1:3478",
            "--turn-user",
            "u",
            "--turn-password",
            "p",
        ],
        "give STUN servers with --stun",
    );
    refused(
        &["--stun", "turn:192.0.2.1:3478"],
        "give TURN servers with --turn",
    );
}

#[test]
fn turn_needs_its_credentials() {
    let why = "--turn needs --turn-user and --turn-password";
    refused(&["--turn", "turn:192.0.2.1:3478"], why);
    refused(&["--turn", "turn:192.0.2.1:3478", "--turn-user", "u"], why);
    refused(
        &["--turn", "turn:192.0.2.1:3478", "--turn-password", "p"],
        why,
    );
    refused(&["--relay-only"], "--relay-only needs a --turn server");
    refused(&["--serve-stun", "127.0.0.1:0"], "--serve");
}

#[test]
fn turn_over_tcp_and_tls_are_used_and_stuns_is_warned_about() {
    let out = run(&[
        "--turn",
        "turn:192.0.2.1:3478?transport=tcp",
        "--turn",
        "turns:192.0.2.1:5349",
        "--turn",
        "turns:192.0.2.1:5349?transport=udp",
        "--turn-user",
        "u",
        "--turn-password",
        "p",
        "--stun",
        "stun:192.0.2.1:3478",
        "--stun",
        "stuns:192.0.2.1:5349",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Past the flags: the node printed its id and tried to join.
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<mesh_proto::NodeId>()
            .is_ok(),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot join the mesh through {NOWHERE}")),
        "{stderr}"
    );
    for unused in ["stuns:192.0.2.1:5349", "turns:192.0.2.1:5349?transport=udp"] {
        assert!(
            stderr.contains(&format!("{unused} accepted but not used")),
            "{unused}: {stderr}"
        );
    }
    for used in [
        "turn:192.0.2.1:3478?transport=tcp",
        "turns:192.0.2.1:5349",
        "stun:192.0.2.1:3478",
    ] {
        assert!(
            !stderr.contains(&format!("{used} accepted but not used")),
            "{used}: {stderr}"
        );
    }
}

#[test]
fn a_turn_ca_file_that_is_not_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("mesh-cli-turn-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    for (file, why) in [
        (dir.join("missing.pem"), "cannot read"),
        (not_pem, "holds no PEM CERTIFICATE block"),
    ] {
        let out = run(&[
            "--turn",
            "turns:192.0.2.1:5349",
            "--turn-user",
            "u",
            "--turn-password",
            "p",
            "--turn-ca",
            file.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("TURN CA file") && stderr.contains(why),
            "{file:?}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_explains_the_nat_flags_and_links() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--stun",
        "--turn",
        "--turn-user",
        "--turn-password",
        "--relay-only",
        "--serve-stun",
        "/links",
        "<local-type>/<local-proto> <remote-type>/<remote-proto>",
        "?transport=tcp",
        "turns:",
        "--turn-ca",
    ] {
        assert!(help.contains(needle), "--help does not mention {needle}");
    }
}

//! The `bootstrap-server` binary: flags, the logged bound address, and SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mesh_proto::{ErrorCode, Frame};
use mesh_testkit::wait_until;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_bootstrap-server");
const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn help_explains_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--listen-backlog",
        "--max-connections",
        "--max-frame-size",
        "--max-payload-size",
        "--frames-per-second",
        "--frame-burst",
        "--max-peers-per-room",
        "--welcome-sample",
        "--max-sample",
        "--outbound-queue",
        "--ping-interval",
        "--idle-timeout",
        "--register-timeout",
        "--shutdown-grace",
        "--stun-listen",
        "--stun-answers-per-second",
        "--stun-answer-burst",
        "--stun-answers-per-source",
        "--stun-source-burst",
        "--no-web-page",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
    assert!(help.contains("BOOTSTRAP_LISTEN"), "env vars are documented");
    assert!(
        help.contains("BOOTSTRAP_NO_WEB_PAGE") && help.contains("browser page"),
        "--help says what --no-web-page turns off"
    );
}

#[test]
fn inconsistent_limits_are_refused_with_a_reason() {
    let out = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--ping-interval",
            "10",
            "--idle-timeout",
            "5",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("idle_timeout must be longer than ping_interval"),
        "{err}"
    );
}

#[tokio::test]
async fn logs_the_bound_address_serves_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let start = Instant::now();
    let url = loop {
        assert!(start.elapsed() < DEADLINE, "no 'listening' line");
        let line = lines.next().expect("stderr closed early").unwrap();
        if let Some(rest) = line.split_once("ws://").map(|(_, r)| r) {
            let addr = rest.split('/').next().unwrap();
            assert!(
                !addr.ends_with(":0"),
                "the real port is logged, not 0: {line}"
            );
            break format!("ws://{addr}/ws");
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let first = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Binary(bytes) = first else {
        panic!("expected a binary frame")
    };
    assert!(matches!(
        mesh_proto::decode(&bytes).unwrap(),
        Frame::Challenge { .. }
    ));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let next = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Binary(bytes) = next else {
        panic!("expected the shutdown error frame")
    };
    match mesh_proto::decode(&bytes).unwrap() {
        Frame::Error { code, .. } => assert_eq!(code, ErrorCode::SHUTTING_DOWN),
        other => panic!("unexpected {other:?}"),
    }
    let exit = wait_until("the server exits after SIGTERM", DEADLINE, async || {
        child.try_wait().unwrap()
    })
    .await;
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

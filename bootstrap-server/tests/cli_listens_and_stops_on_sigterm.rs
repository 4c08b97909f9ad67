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
        "--redis",
        "--redis-ca",
        "--fleet-prefix",
        "--fleet-lease",
        "--fleet-timeout",
        "--fleet-queue",
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
fn fleet_flags_without_redis_and_bad_redis_urls_are_refused_without_the_password() {
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--fleet-prefix", "x"])
        .env_remove("BOOTSTRAP_REDIS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--redis"));
    for bad in [
        "http://:hunter2@127.0.0.1:6379",
        "redis://:hunter2@",
        "hunter2",
    ] {
        let out = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--redis", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid Redis URL"), "{err}");
        assert!(!err.contains("hunter2"), "the password is shown: {err}");
    }
}

/// With Redis unreachable (a closed port) the server still serves, degraded, and its logs
/// name the Redis without its password.
#[tokio::test]
async fn a_fleet_server_without_its_redis_serves_degraded_and_never_logs_the_password() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--fleet-timeout", "0.2"])
        .env(
            "BOOTSTRAP_REDIS",
            format!("redis://:hunter2@127.0.0.1:{port}/0"),
        )
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let mut addr = None;
    let start = Instant::now();
    while addr.is_none() || !log.iter().any(|l: &String| l.contains("redis unreachable")) {
        assert!(start.elapsed() < DEADLINE, "log so far: {log:#?}");
        let Ok(line) = rx.recv_timeout(DEADLINE) else {
            break;
        };
        if addr.is_none()
            && let Some(rest) = line.split_once("listening: ws://").map(|(_, r)| r)
        {
            addr = rest.split('/').next().map(str::to_owned);
        }
        log.push(line);
    }
    let addr: std::net::SocketAddr = addr.expect("a listening line").parse().unwrap();
    let (status, body) = mesh_testkit::server::http_get(addr, "/healthz").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("degraded: redis unreachable"), "{body}");
    // It registers (its own rooms) while degraded.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let first = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, Message::Binary(_)));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    log.extend(rx.try_iter());
    let text = log.join("\n");
    assert!(
        text.contains("redis://:***@127.0.0.1"),
        "the redacted URL is logged: {text}"
    );
    assert!(!text.contains("hunter2"), "the password is logged: {text}");
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

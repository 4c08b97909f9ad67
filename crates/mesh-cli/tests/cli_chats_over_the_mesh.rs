//! The `mesh-node` binary: three real processes on loopback join through a real bootstrap
//! server and chat: `/to <id> text` and broadcast lines, printed with their sender. And its
//! `/links` command: `links: N`, then one `link <peer-node-id> <local-type>/<local-proto>
//! <remote-type>/<remote-proto>` line per link, between two processes, the first running the
//! door with a STUN responder (`--serve-stun`), which the second, having no `--stun`, takes
//! from the Welcome.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-node");
const DEADLINE: Duration = Duration::from_secs(30);

struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    id: String,
}

async fn spawn(url: &str) -> Proc {
    let (proc, mut log) = spawn_with(&["--bootstrap", url, "--degree", "2"]).await;
    // Drain the log so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    proc
}

/// Spawns `mesh-node` with `args` (plus loopback binding); returns it and its stderr lines.
async fn spawn_with(args: &[&str]) -> (Proc, Lines<BufReader<ChildStderr>>) {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mesh-node");
    let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let id = tokio::time::timeout(DEADLINE, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        id.parse::<mesh_proto::NodeId>().is_ok(),
        "the first line is the NodeId: {id}"
    );
    (
        Proc {
            child,
            stdin,
            stdout,
            id,
        },
        stderr,
    )
}

impl Proc {
    async fn say(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(DEADLINE, self.stdout.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("the process is running")
    }

    /// `/links` until it lists one link; returns that link's line.
    async fn one_link(&mut self) -> String {
        let start = tokio::time::Instant::now();
        loop {
            self.say("/links").await;
            let count = loop {
                let line = self.line().await;
                if let Some(n) = line.strip_prefix("links: ") {
                    break n.parse::<usize>().expect("links: <count>");
                }
            };
            let lines: Vec<String> = {
                let mut lines = Vec::new();
                for _ in 0..count {
                    lines.push(self.line().await);
                }
                lines
            };
            if count == 1 {
                return lines.into_iter().next().unwrap();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "never exactly one link: {lines:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/quit`, and the process exits cleanly in time.
    async fn quit(&mut self) {
        self.say("/quit").await;
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(
            status.success(),
            "mesh-node exits cleanly on /quit: {status:?}"
        );
    }

    /// Reads lines until one equals `want`, with a deadline.
    async fn expect_line(&mut self, want: &str) {
        let read = async {
            while let Some(line) = self.stdout.next_line().await.unwrap() {
                if line == want {
                    return;
                }
            }
            panic!("stdout closed before {want:?}");
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .unwrap_or_else(|_| panic!("no line {want:?}"));
    }
}

#[test]
fn help_explains_every_flag() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--bootstrap",
        "--room",
        "--degree",
        "--key",
        "--bind",
        "--stun",
        "--turn",
        "--door",
        "--door-url",
        "/to",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn an_unreachable_bootstrap_server_is_a_clear_error() {
    let out = std::process::Command::new(BIN)
        .args([
            "--bootstrap",
            "ws://127.0.0.1:1/ws",
            "--bind",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot join the mesh through ws://127.0.0.1:1/ws"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_chat_with_unicast_and_broadcast() {
    // The first node runs the door itself (--serve) and logs the URL for the others.
    let (mut a, mut a_log) = spawn_with(&["--serve", "127.0.0.1:0", "--degree", "2"]).await;
    let find_url = async {
        while let Some(line) = a_log.next_line().await.unwrap() {
            if let Some((_, rest)) = line.split_once("--bootstrap ") {
                return rest.trim().to_owned();
            }
        }
        panic!("no bootstrap URL logged");
    };
    let url = tokio::time::timeout(DEADLINE, find_url)
        .await
        .expect("the URL is logged");
    // Keep draining the log so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = a_log.next_line().await {} });
    let mut b = spawn(&url).await;
    let mut c = spawn(&url).await;

    // Until the mesh has formed a send may find no route: retry on a schedule, each
    // message numbered, and wait for any of them to arrive.
    let (bid, aid) = (b.id.clone(), a.id.clone());
    let sender = async {
        for k in 0.. {
            a.say(&format!("/to {bid} hello {k}")).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let receiver = async {
        let read = async {
            while let Some(line) = b.stdout.next_line().await.unwrap() {
                if line.starts_with(&format!("{aid} hello ")) {
                    return;
                }
            }
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .expect("b never got a's message");
    };
    tokio::select! {
        () = receiver => {}
        () = sender => unreachable!(),
    }

    // c broadcasts once it has a neighbour (`/peers` lists them, one line each).
    let linked = async {
        loop {
            c.say("/peers").await;
            loop {
                let line = c.stdout.next_line().await.unwrap().expect("c is running");
                if let Some(n) = line.strip_prefix("neighbours: ") {
                    if n != "0" {
                        return;
                    }
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(DEADLINE, linked)
        .await
        .expect("c never got a neighbour");
    c.say("hi all").await;
    let line = format!("{} [broadcast] hi all", c.id);
    a.expect_line(&line).await;
    b.expect_line(&line).await;

    for p in [&mut a, &mut b, &mut c] {
        p.quit().await;
    }
}

#[tokio::test]
async fn a_node_with_a_door_runs_it_and_registers_there() {
    let (mut a, mut a_log) = spawn_with(&["--serve", "127.0.0.1:0", "--degree", "2"]).await;
    let url = find_in_log(&mut a_log, "--bootstrap ").await;
    tokio::spawn(async move { while let Ok(Some(_)) = a_log.next_line().await {} });
    let (mut b, mut b_log) = spawn_with(&[
        "--bootstrap",
        &url,
        "--door",
        "127.0.0.1:0",
        "--degree",
        "2",
    ])
    .await;
    let door = find_in_log(&mut b_log, "door for neighbours that lose every link: ").await;
    assert!(
        door.starts_with("ws://127.0.0.1:") && door.ends_with("/ws") && door != url,
        "{door}"
    );
    find_in_log(&mut b_log, "registered at our own door").await;
    tokio::spawn(async move { while let Ok(Some(_)) = b_log.next_line().await {} });
    b.say("/stats").await;
    let read = async {
        while let Some(line) = b.stdout.next_line().await.unwrap() {
            if line.contains("door_registered") {
                return line;
            }
        }
        panic!("no stats");
    };
    let line = tokio::time::timeout(DEADLINE, read).await.unwrap();
    assert!(line.contains("true"), "{line}");
    for p in [&mut a, &mut b] {
        p.quit().await;
    }
}

/// Reads stderr until a line contains `needle`; returns the rest of that line after it.
async fn find_in_log(log: &mut Lines<BufReader<ChildStderr>>, needle: &str) -> String {
    let find = async {
        while let Some(line) = log.next_line().await.unwrap() {
            if let Some((_, rest)) = line.split_once(needle) {
                return rest.trim().to_owned();
            }
        }
        panic!("the log ended without {needle:?}");
    };
    tokio::time::timeout(DEADLINE, find)
        .await
        .expect("logged in time")
}

/// Checks one `/links` line and returns its two candidates.
fn parse_link(line: &str, peer: &str) -> (String, String) {
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 4, "link <peer> <local> <remote>: {line:?}");
    assert_eq!(fields[0], "link", "{line:?}");
    assert_eq!(fields[1], peer, "{line:?}");
    for candidate in &fields[2..] {
        let (kind, protocol) = candidate.split_once('/').expect("<type>/<proto>");
        assert!(
            ["host", "srflx", "prflx", "relay", "unknown"].contains(&kind),
            "{line:?}"
        );
        assert!(["udp", "tcp", "unknown"].contains(&protocol), "{line:?}");
    }
    (fields[2].to_owned(), fields[3].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_lists_each_link_with_its_candidate_pair() {
    let (mut a, mut a_log) = spawn_with(&[
        "--serve",
        "127.0.0.1:0",
        "--serve-stun",
        "127.0.0.1:0",
        "--degree",
        "1",
    ])
    .await;
    let url = find_in_log(&mut a_log, "--bootstrap ").await;
    let stun = find_in_log(&mut a_log, "its STUN responder: ").await;
    let stun = stun.split_whitespace().next().unwrap().to_owned();
    assert!(stun.starts_with("stun:127.0.0.1:"), "{stun}");
    tokio::spawn(async move { while let Ok(Some(_)) = a_log.next_line().await {} });
    let (mut b, mut b_log) = spawn_with(&["--bootstrap", &url, "--degree", "1"]).await;
    tokio::spawn(async move { while let Ok(Some(_)) = b_log.next_line().await {} });

    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    let on_a = a.one_link().await;
    let on_b = b.one_link().await;
    eprintln!("a: {on_a}\nb: {on_b}");
    // On loopback both ends are host candidates (a srflx one has the same address here).
    assert_eq!(
        parse_link(&on_a, &b_id),
        ("host/udp".into(), "host/udp".into())
    );
    assert_eq!(
        parse_link(&on_b, &a_id),
        ("host/udp".into(), "host/udp".into())
    );

    // b took the door's STUN server from its Welcome.
    b.say("/stats").await;
    let mut stats = String::new();
    loop {
        let line = b.line().await;
        stats.push_str(&line);
        if line == "}" {
            break;
        }
    }
    let stats: String = stats.split_whitespace().collect();
    assert!(
        stats.contains(&format!("server_stun:Some(\"{stun}\",)")),
        "{stats}"
    );

    for p in [&mut a, &mut b] {
        p.quit().await;
    }
}

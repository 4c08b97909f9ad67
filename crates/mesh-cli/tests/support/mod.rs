//! What the CLI tests share: `mesh-node` processes, spawned as a person would start them,
//! with their stdout read line by line and their stderr collected.
#![allow(dead_code)] // each test file uses its own part

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_proto::NodeId;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_mesh-node");
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Proc {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: Lines<BufReader<ChildStdout>>,
    /// Every stderr line so far (read by a task, so the process never blocks on the pipe).
    pub log: Arc<Mutex<Vec<String>>>,
    pub id: String,
}

/// Spawns `mesh-node --bootstrap url --degree 2`, quiet (no RUST_LOG).
pub async fn spawn(url: &str) -> Proc {
    spawn_with(&["--bootstrap", url, "--degree", "2"]).await
}

/// Spawns `mesh-node` with `args` (plus loopback binding) and no RUST_LOG, as a person
/// would start it; returns once it printed its NodeId.
pub async fn spawn_with(args: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--bind", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mesh-node");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            lines.lock().unwrap().push(line);
        }
    });
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let id = tokio::time::timeout(DEADLINE, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        id.parse::<NodeId>().is_ok(),
        "the first line is the NodeId: {id}"
    );
    Proc {
        child,
        stdin,
        stdout,
        log,
        id,
    }
}

impl Proc {
    pub async fn say(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    pub async fn line(&mut self) -> String {
        tokio::time::timeout(DEADLINE, self.stdout.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("the process is running")
    }

    /// The stderr lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a stderr line contains `needle`; returns the rest of that line after it.
    pub async fn find_in_log(&self, needle: &str) -> String {
        let start = tokio::time::Instant::now();
        loop {
            let found = self.log().iter().find_map(|line| {
                line.split_once(needle)
                    .map(|(_, rest)| rest.trim().to_owned())
            });
            if let Some(rest) = found {
                return rest;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "stderr never said {needle:?}: {:?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/links` until it lists one link; returns that link's line.
    pub async fn one_link(&mut self) -> String {
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

    /// `/peers` until it lists `n` neighbours; returns them.
    pub async fn peers(&mut self, n: usize) -> Vec<String> {
        let start = tokio::time::Instant::now();
        loop {
            self.say("/peers").await;
            let count = loop {
                let line = self.line().await;
                if let Some(count) = line.strip_prefix("neighbours: ") {
                    break count.parse::<usize>().expect("neighbours: <count>");
                }
            };
            let mut peers = Vec::new();
            for _ in 0..count {
                let line = self.line().await;
                peers.push(
                    line.strip_prefix("neighbour ")
                        .expect("neighbour <id>")
                        .to_owned(),
                );
            }
            if count == n {
                return peers;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "never {n} neighbours: {peers:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/stats --json`, parsed.
    pub async fn stats_json(&mut self) -> serde_json::Value {
        self.say("/stats --json").await;
        loop {
            let line = self.line().await;
            if line.starts_with('{') {
                return serde_json::from_str(&line).expect("/stats --json prints JSON");
            }
        }
    }

    /// `/quit`, and the process exits cleanly in time.
    pub async fn quit(&mut self) {
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
    pub async fn expect_line(&mut self, want: &str) {
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

/// Starts the first node, running the bootstrap server (`--serve`) with `extra` flags;
/// returns it and the URL it printed for the others.
pub async fn serve(extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["--serve", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let first = spawn_with(&args).await;
    let url = first.find_in_log("--bootstrap ").await;
    (first, url)
}

//! One real `mesh-node` process inside a lab namespace, driven through its stdin/stdout
//! protocol: the NodeId on the first line, then `/peers`, `/links` and `/to` commands, and
//! received messages printed as `<sender> <text>`.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use crate::lab::{Lab, NatKind};

/// How long a node may take to answer one command.
const REPLY_DEADLINE: Duration = Duration::from_secs(10);

/// A candidate's type and protocol as `/links` prints them (`srflx/udp`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Candidate {
    /// host, srflx, prflx, relay or unknown.
    pub kind: String,
    /// udp, tcp, tls (a local relay candidate reached over TURN-TLS) or unknown.
    pub proto: String,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.proto)
    }
}

/// One line of `/links`: the selected candidate pair of the link to `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The neighbour's NodeId.
    pub peer: String,
    /// This node's candidate of the selected pair.
    pub local: Candidate,
    /// The neighbour's candidate of the selected pair.
    pub remote: Candidate,
}

/// Parses `host/udp`.
fn parse_candidate(text: &str) -> Result<Candidate, String> {
    const KINDS: [&str; 5] = ["host", "srflx", "prflx", "relay", "unknown"];
    const PROTOS: [&str; 4] = ["udp", "tcp", "tls", "unknown"];
    let (kind, proto) = text
        .split_once('/')
        .ok_or_else(|| format!("candidate {text:?} is not <type>/<proto>"))?;
    if !KINDS.contains(&kind) || !PROTOS.contains(&proto) {
        return Err(format!("candidate {text:?}: unknown type or protocol"));
    }
    Ok(Candidate {
        kind: kind.to_owned(),
        proto: proto.to_owned(),
    })
}

/// Parses `link <peer-node-id> <local-type>/<local-proto> <remote-type>/<remote-proto>`.
pub fn parse_link(line: &str) -> Result<Link, String> {
    let fields: Vec<&str> = line.split(' ').collect();
    match fields[..] {
        ["link", peer, local, remote] => {
            peer.parse::<mesh_proto::NodeId>()
                .map_err(|e| format!("{line:?}: bad peer id: {e}"))?;
            Ok(Link {
                peer: peer.to_owned(),
                local: parse_candidate(local)?,
                remote: parse_candidate(remote)?,
            })
        }
        _ => Err(format!(
            "{line:?} is not `link <peer> <type>/<proto> <type>/<proto>`"
        )),
    }
}

/// A running `mesh-node` in the lab.
#[derive(Debug)]
pub struct Node {
    /// A short name for messages: the LAN kind and host (`cone1-a`).
    pub name: String,
    /// The NAT in front of it.
    pub kind: NatKind,
    /// Its LAN's number.
    pub lan: u8,
    /// Its NodeId (the first line it printed).
    pub id: String,
    /// Its stderr (logs).
    pub log: PathBuf,
    /// Messages received so far, as printed: `<sender> <text>`.
    pub received: HashSet<String>,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Node {
    /// Starts `mesh-node` in `ns` with `args`; returns once it printed its NodeId.
    pub async fn start(
        lab: &Lab,
        bin: &str,
        ns: &str,
        name: String,
        (kind, lan): (NatKind, u8),
        args: &[String],
    ) -> Result<Self, String> {
        let log = lab.logs.join(format!("{name}.log"));
        let stderr = lab.log_file(&format!("{name}.log"))?;
        let mut child = Lab::command_in(ns, bin)
            .args(args)
            // Pinned (the binary is quiet by default): webrtc-rs's warnings (e.g. a skipped
            // TURN URL) are part of what the test reports.
            .env(
                "RUST_LOG",
                "warn,rtc_ice=error,rtc_dtls=error,mesh_node=info,mesh_core=info",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {bin} in {ns}: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, mut lines) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        let id = tokio::time::timeout(REPLY_DEADLINE, lines.recv())
            .await
            .map_err(|_| format!("{name} printed no NodeId within {REPLY_DEADLINE:?}"))?
            .ok_or_else(|| format!("{name} exited before printing its NodeId; see {log:?}"))?;
        id.parse::<mesh_proto::NodeId>()
            .map_err(|e| format!("{name}: first line {id:?} is not a NodeId: {e}"))?;
        Ok(Self {
            name,
            kind,
            lan,
            id,
            log,
            received: HashSet::new(),
            child,
            stdin,
            lines,
        })
    }

    /// Writes one command line.
    pub async fn say(&mut self, line: &str) -> Result<(), String> {
        let write = async {
            self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
            self.stdin.flush().await
        };
        write
            .await
            .map_err(|e| format!("{}: writing {line:?}: {e}", self.name))
    }

    /// The next stdout line that is not a received message (those go to `received`).
    async fn next_reply_line(&mut self) -> Result<String, String> {
        let wait = async {
            loop {
                let Some(line) = self.lines.recv().await else {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(format!(
                        "{} exited ({status:?}); see {:?}",
                        self.name, self.log
                    ));
                };
                if is_reply(&line) {
                    return Ok(line);
                }
                self.received.insert(line);
            }
        };
        tokio::time::timeout(REPLY_DEADLINE, wait)
            .await
            .map_err(|_| format!("{} did not answer within {REPLY_DEADLINE:?}", self.name))?
    }

    /// Moves every message printed so far into `received`, without waiting.
    pub fn collect(&mut self) -> Result<(), String> {
        while let Ok(line) = self.lines.try_recv() {
            if is_reply(&line) {
                return Err(format!("{}: unexpected line {line:?}", self.name));
            }
            self.received.insert(line);
        }
        Ok(())
    }

    /// `/peers`: the neighbours' NodeIds.
    pub async fn peers(&mut self) -> Result<Vec<String>, String> {
        self.say("/peers").await?;
        let header = self.next_reply_line().await?;
        self.read_peers(&header).await
    }

    async fn read_peers(&mut self, header: &str) -> Result<Vec<String>, String> {
        let n: usize = header
            .strip_prefix("neighbours: ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{}: expected `neighbours: N`, got {header:?}", self.name))?;
        let mut peers = Vec::with_capacity(n);
        for _ in 0..n {
            let line = self.next_reply_line().await?;
            let peer = line
                .strip_prefix("neighbour ")
                .ok_or_else(|| format!("{}: expected `neighbour <id>`, got {line:?}", self.name))?;
            peers.push(peer.to_owned());
        }
        Ok(peers)
    }

    /// `/links`: the selected candidate pair of every link, or `None` if this `mesh-node`
    /// does not know the command (it answers the `/peers` sent after it first).
    pub async fn links(&mut self) -> Result<Option<Vec<Link>>, String> {
        self.say("/links").await?;
        self.say("/peers").await?;
        let header = self.next_reply_line().await?;
        let Some(n) = header.strip_prefix("links: ") else {
            self.read_peers(&header).await?;
            return Ok(None);
        };
        let n: usize = n
            .parse()
            .map_err(|_| format!("{}: bad header {header:?}", self.name))?;
        let mut links = Vec::with_capacity(n);
        for _ in 0..n {
            let line = self.next_reply_line().await?;
            links.push(parse_link(&line).map_err(|e| format!("{}: {e}", self.name))?);
        }
        let header = self.next_reply_line().await?;
        self.read_peers(&header).await?;
        Ok(Some(links))
    }

    /// `/stats --json`: the node's counters (docs/operations.md lists the keys).
    pub async fn stats_json(&mut self) -> Result<serde_json::Value, String> {
        self.say("/stats --json").await?;
        let line = self.next_reply_line().await?;
        serde_json::from_str(&line)
            .map_err(|e| format!("{}: /stats --json printed {line:?}: {e}", self.name))
    }

    /// `/quit`, then waits for the process to end.
    pub async fn quit(mut self) -> Result<(), String> {
        self.say("/quit").await?;
        let status = tokio::time::timeout(REPLY_DEADLINE, self.child.wait())
            .await
            .map_err(|_| format!("{} did not exit on /quit", self.name))?
            .map_err(|e| format!("{}: {e}", self.name))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} exited with {status}; see {:?}",
                self.name, self.log
            ))
        }
    }
}

/// Whether a stdout line answers a command (rather than being a received message, which
/// starts with the sender's NodeId).
fn is_reply(line: &str) -> bool {
    line.starts_with("neighbours: ")
        || line.starts_with("neighbour ")
        || line.starts_with("links: ")
        || line.starts_with("link ")
        // `/stats --json` (a received message starts with its sender's NodeId).
        || line.starts_with("{\"id\":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_lines_parse_and_reject_what_is_not_one() {
        let id = "0192f5c0-8f4e-8a3b-9c2d-1e2f3a4b5c6d";
        let link = parse_link(&format!("link {id} srflx/udp prflx/udp")).unwrap();
        assert_eq!(link.peer, id);
        assert_eq!(link.local.to_string(), "srflx/udp");
        assert_eq!(link.remote.to_string(), "prflx/udp");
        let link = parse_link(&format!("link {id} relay/tcp unknown/unknown")).unwrap();
        assert_eq!(
            (link.local.kind.as_str(), link.local.proto.as_str()),
            ("relay", "tcp")
        );
        for bad in [
            format!("link {id} srflx/udp"),
            format!("link {id} srflx/udp prflx/udp extra"),
            format!("link {id} srflx prflx/udp"),
            format!("link {id} stun/udp host/udp"),
            format!("link {id} host/sctp host/udp"),
            "link not-an-id host/udp host/udp".to_owned(),
            format!("neighbour {id}"),
        ] {
            assert!(parse_link(&bad).is_err(), "accepted {bad:?}");
        }
    }
}

//! The NAT lab: the real `bootstrap-server` and `mesh-node` binaries and a real TURN server
//! (coturn) in Linux network namespaces, with home routers doing NAT between private LANs
//! and a WAN. Asserts that every node that can get out joins the mesh, that messages flow
//! between every pair of them, and which candidate pair ICE selected for each kind of NAT.
//!
//! ```text
//!                      mnl-wan: bridge "wan", 203.0.113.1/24
//!                      bootstrap-server  ws 203.0.113.1:8080, STUN 203.0.113.1:3478
//!                      turnserver        203.0.113.1:3479 (udp+tcp), 5349 (tls),
//!                                        relays 49152-49407
//!        ┌──────────────┬─────────────┼──────────────┬───────────────┬───────────────┐
//!   mnl-r1 .11     mnl-r2 .12    mnl-r3 .13     mnl-r4 .14      mnl-r5 .15      mnl-r6 .16
//!   cone           cone          symmetric      symmetric       cone, UDP       cone, UDP
//!                                                               dropped         dropped
//!   10.1.0.0/24    10.2.0.0/24   10.3.0.0/24    10.4.0.0/24     10.5.0.0/24     10.6.0.0/24
//!   cone1-a .2     cone2-a .2    sym3-a .2      sym4-a .2       udpblk5-a .2    udpblk6-a .2
//!   cone1-b .3                                                  (TURN over TCP) (TURN over TLS)
//! ```
//!
//! The nodes behind the UDP-blocking firewalls link through TURN over TCP and over TLS
//! (coturn's TLS port, with a certificate for 203.0.113.1 signed by a CA the test makes and
//! hands to the node with `--turn-ca`), bridged by mesh-node's transport.
//!
//! It needs root, `ip`, `iptables` and `turnserver`, so it is `#[ignore]`d: `.ci/run` runs
//! it in its NAT lab step (`cargo test -p mesh-e2e --test nat_lab -- --ignored
//! --test-threads=1`). Without those it fails with the reason; it never skips. The lab is
//! torn down on every exit, panics included; logs stay in `target/tmp/nat-lab/`.

#[path = "nat_lab/lab.rs"]
mod lab;
#[path = "nat_lab/matrix.rs"]
mod matrix;
#[path = "nat_lab/node.rs"]
mod node;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::{Lab, Lan, NatKind, WAN_NS, WAN_SERVER_IP};
use matrix::{PairView, check_pair_types, render};
use mesh_testkit::TestPki;
use node::{Link, Node};

/// The bootstrap server's WebSocket port on the WAN.
const WS_PORT: u16 = 8080;
/// Its STUN responder's port.
const STUN_PORT: u16 = 3478;
/// coturn's port, UDP and TCP.
const TURN_PORT: u16 = 3479;
/// coturn's TLS port.
const TURNS_PORT: u16 = 5349;
/// The UDP-blocked LAN whose node uses TURN over TLS (the other one uses TCP).
const TLS_LAN: u8 = 6;
/// Deadline for the servers to listen.
const SERVER_DEADLINE: Duration = Duration::from_secs(10);
/// Deadline for every node that can get out to have a neighbour.
const JOIN_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for every message of the all-pairs exchange to arrive.
const MESSAGE_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for the linkable nodes to form a full mesh.
const FULL_MESH_DEADLINE: Duration = Duration::from_secs(30);
/// How often a node whose message has not arrived sends it again.
const RESEND_INTERVAL: Duration = Duration::from_millis(500);

/// The report's line once the lab exists (and has logs worth showing).
const LAB_UP: &str = "lab up";

/// The LANs: two cone NATs (one with two hosts, for host↔host), two symmetric ones (for
/// symmetric↔symmetric) and two that let no UDP out (one node on TURN over TCP, one on
/// TURN over TLS).
fn lans() -> Vec<Lan> {
    let lan = |n, kind, hosts| Lan { n, kind, hosts };
    vec![
        lan(1, NatKind::Cone, 2),
        lan(2, NatKind::Cone, 1),
        lan(3, NatKind::Symmetric, 1),
        lan(4, NatKind::Symmetric, 1),
        lan(5, NatKind::UdpBlocked, 1),
        lan(TLS_LAN, NatKind::UdpBlocked, 1),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and network namespaces: run by .ci/run's NAT lab step"]
async fn nodes_behind_nats_and_udp_blocking_firewalls_join_and_chat() {
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nat-lab");
    let started = Instant::now();
    let mut report = String::new();
    let result = run_lab(&logs, &mut report).await;
    // The lab is gone by now (dropped inside run_lab); its logs are not.
    eprintln!("{report}");
    match result {
        Ok(()) => eprintln!("NAT lab: passed in {:?}", started.elapsed()),
        Err(e) if report.contains(LAB_UP) => panic!(
            "NAT lab failed after {:?}: {e}\n\nlogs in {logs:?}\n{}",
            started.elapsed(),
            log_tails(&logs)
        ),
        Err(e) => panic!("NAT lab could not be built: {e}"),
    }
}

/// Builds the lab, runs every check, tears the lab down; writes what it saw (timings, the
/// result matrix) to `report` as it goes.
async fn run_lab(logs: &Path, report: &mut String) -> Result<(), String> {
    lab::preflight()?;
    let t = Instant::now();
    let (server_bin, node_bin) = binaries()?;
    writeln!(report, "binaries built in {:?}", t.elapsed()).unwrap();
    let t = Instant::now();
    let mut lab = Lab::build(&lans(), logs)?;
    writeln!(report, "{LAB_UP} in {:?}", t.elapsed()).unwrap();

    // coturn's certificate for its TLS port, and the CA the nodes are told to trust.
    let pki = TestPki::write(&logs.join("pki"), &[WAN_SERVER_IP]);
    let t = Instant::now();
    start_servers(&mut lab, &server_bin, &pki).await?;
    writeln!(report, "servers listening after {:?}", t.elapsed()).unwrap();
    let t = Instant::now();
    // Declared after the lab: dropped (killed) before the lab is torn down.
    let mut nodes = start_nodes(&mut lab, &node_bin, &pki).await?;
    writeln!(report, "{} nodes started in {:?}", nodes.len(), t.elapsed()).unwrap();

    // 1. Every node joins, those behind the UDP-blocking firewalls included: a neighbour
    //    within the deadline.
    let t = Instant::now();
    wait_for_neighbours(&mut lab, &mut nodes).await?;
    writeln!(report, "every node has a neighbour after {:?}", t.elapsed()).unwrap();

    // 2. Messages flow between every ordered pair, over the mesh where there is no direct
    //    link yet.
    let t = Instant::now();
    exchange_all_pairs(&mut lab, &mut nodes).await?;
    writeln!(
        report,
        "all-pairs messages delivered after {:?}",
        t.elapsed()
    )
    .unwrap();

    // 3. The selected candidate pairs, once every pair has a direct link.
    let t = Instant::now();
    let matrix = full_mesh_links(&mut lab, &mut nodes).await?;
    writeln!(report, "full mesh with /links after {:?}", t.elapsed()).unwrap();
    report.push_str(&render(&matrix));
    std::fs::write(logs.join("matrix.md"), render(&matrix))
        .map_err(|e| format!("writing matrix.md: {e}"))?;
    check_pair_types(&matrix)?;

    // 4. The UDP-blocked nodes' TURN connections: over TCP and TLS, none failed.
    for node in nodes.iter_mut().filter(|n| n.kind == NatKind::UdpBlocked) {
        let stats = node.stats_json().await?;
        let count = |key: &str| stats.get(key).and_then(serde_json::Value::as_u64);
        let (connections, failures) = (
            count("turn_stream_connections"),
            count("turn_stream_failures"),
        );
        if !matches!(connections, Some(n) if n >= 1) || failures != Some(0) {
            return Err(format!(
                "{}: TURN over TCP/TLS connections {connections:?}, failures {failures:?}",
                node.name
            ));
        }
        writeln!(
            report,
            "{}: {} TURN connections over {}, {} bytes sent, {} received",
            node.name,
            connections.unwrap_or(0),
            turn_transport(node.lan),
            count("turn_stream_bytes_sent").unwrap_or(0),
            count("turn_stream_bytes_received").unwrap_or(0),
        )
        .unwrap();
    }

    for node in nodes {
        node.quit().await?;
    }
    let t = Instant::now();
    drop(lab);
    writeln!(report, "lab down in {:?}", t.elapsed()).unwrap();
    Ok(())
}

/// How the node of LAN `n` reaches the TURN server: UDP unless its LAN blocks UDP, then
/// TCP, or TLS on [`TLS_LAN`].
fn turn_transport(n: u8) -> &'static str {
    match n {
        TLS_LAN => "tls",
        5 => "tcp",
        _ => "udp",
    }
}

/// Builds the two binaries (a no-op when they are fresh) with the cargo running this test,
/// in the same profile; their paths.
fn binaries() -> Result<(String, String), String> {
    let [server, node] = mesh_e2e::built_binaries(["bootstrap-server", "mesh-node"])?;
    Ok((server, node))
}

/// The bootstrap server (door and STUN) and coturn, on the WAN.
async fn start_servers(lab: &mut Lab, server_bin: &str, pki: &TestPki) -> Result<(), String> {
    let listen = format!("{WAN_SERVER_IP}:{WS_PORT}");
    let stun = format!("{WAN_SERVER_IP}:{STUN_PORT}");
    lab.spawn_daemon(
        WAN_NS,
        server_bin,
        &["--listen", &listen, "--stun-listen", &stun],
        "bootstrap-server.log",
    )?;
    let dir = lab.logs.display().to_string();
    let turn = [
        "-n".to_owned(), // no configuration file
        format!("--listening-ip={WAN_SERVER_IP}"),
        format!("--listening-port={TURN_PORT}"),
        format!("--relay-ip={WAN_SERVER_IP}"),
        "--min-port=49152".to_owned(),
        "--max-port=49407".to_owned(),
        "--lt-cred-mech".to_owned(),
        "--user=u:p".to_owned(),
        "--realm=mesh".to_owned(),
        format!("--tls-listening-port={TURNS_PORT}"),
        format!("--cert={}", pki.cert.display()),
        format!("--pkey={}", pki.key.display()),
        "--no-dtls".to_owned(),
        "--no-cli".to_owned(),
        "--no-rfc5780".to_owned(),
        // Candidates on the LANs' private addresses are signaled too; relaying towards
        // them must be refused (403), not tried: coturn has no route there, and a failed
        // send tore down the whole allocation.
        "--denied-peer-ip=10.0.0.0-10.255.255.255".to_owned(),
        format!("--userdb={dir}/turndb"),
        format!("--pidfile={dir}/turnserver.pid"),
        "--log-file=stdout".to_owned(),
        "--simple-log".to_owned(),
    ];
    let turn: Vec<&str> = turn.iter().map(String::as_str).collect();
    lab.spawn_daemon(WAN_NS, "turnserver", &turn, "turnserver.log")?;
    lab.wait_listening(WAN_NS, "t", WS_PORT, SERVER_DEADLINE)
        .await?;
    lab.wait_listening(WAN_NS, "u", STUN_PORT, SERVER_DEADLINE)
        .await?;
    lab.wait_listening(WAN_NS, "u", TURN_PORT, SERVER_DEADLINE)
        .await?;
    lab.wait_listening(WAN_NS, "t", TURN_PORT, SERVER_DEADLINE)
        .await?;
    lab.wait_listening(WAN_NS, "t", TURNS_PORT, SERVER_DEADLINE)
        .await?;
    Ok(())
}

/// One `mesh-node` per host, each with the lab's STUN and TURN servers (TURN over TCP or
/// TLS for the LANs that let no UDP out: [`turn_transport`]).
async fn start_nodes(lab: &mut Lab, node_bin: &str, pki: &TestPki) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    for lan in lab.lans.clone() {
        for m in 1..=lan.hosts {
            let name = format!(
                "{}{}-{}",
                match lan.kind {
                    NatKind::Cone => "cone",
                    NatKind::Symmetric => "sym",
                    NatKind::UdpBlocked => "udpblk",
                },
                lan.n,
                char::from(b'a' + m - 1)
            );
            let turn = match turn_transport(lan.n) {
                "tls" => format!("turns:{WAN_SERVER_IP}:{TURNS_PORT}"),
                transport => format!("turn:{WAN_SERVER_IP}:{TURN_PORT}?transport={transport}"),
            };
            let args = [
                "--bootstrap".to_owned(),
                format!("ws://{WAN_SERVER_IP}:{WS_PORT}/ws"),
                "--room".to_owned(),
                "nat-lab".to_owned(),
                // Seven nodes: a target degree of 6 asks for the full mesh, so every pair
                // of NAT kinds gets a direct link to report on.
                "--degree".to_owned(),
                "6".to_owned(),
                "--bind".to_owned(),
                format!("{}:0", lan.host_ip(m)),
                "--stun".to_owned(),
                format!("stun:{WAN_SERVER_IP}:{STUN_PORT}"),
                "--turn".to_owned(),
                turn,
                "--turn-ca".to_owned(),
                pki.ca.display().to_string(),
                "--turn-user".to_owned(),
                "u".to_owned(),
                "--turn-password".to_owned(),
                "p".to_owned(),
            ];
            let node = Node::start(
                lab,
                node_bin,
                &lan.host_ns(m),
                name,
                (lan.kind, lan.n),
                &args,
            )
            .await?;
            nodes.push(node);
        }
    }
    Ok(nodes)
}

/// Polls `/peers` on every node until each has at least one neighbour.
async fn wait_for_neighbours(lab: &mut Lab, nodes: &mut [Node]) -> Result<(), String> {
    let start = Instant::now();
    loop {
        lab.check_daemons()?;
        let mut lonely = Vec::new();
        for node in nodes.iter_mut() {
            if node.peers().await?.is_empty() {
                lonely.push(node.name.clone());
            }
        }
        if lonely.is_empty() {
            return Ok(());
        }
        if start.elapsed() > JOIN_DEADLINE {
            return Err(format!("no neighbour after {JOIN_DEADLINE:?}: {lonely:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every node sends `/to` every other node, again every [`RESEND_INTERVAL`] until it
/// arrived (a route may not exist yet while the mesh forms); each must arrive.
async fn exchange_all_pairs(lab: &mut Lab, nodes: &mut [Node]) -> Result<(), String> {
    let ids: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.id.clone(), n.name.clone()))
        .collect();
    // (from, to) → the line `to` prints when it arrives.
    let mut pending: BTreeMap<(usize, usize), String> = BTreeMap::new();
    for (a, (a_id, a_name)) in ids.iter().enumerate() {
        for (b, (_, b_name)) in ids.iter().enumerate() {
            if a != b {
                pending.insert((a, b), format!("{a_id} nat-lab {a_name}->{b_name}"));
            }
        }
    }
    let start = Instant::now();
    loop {
        lab.check_daemons()?;
        for node in nodes.iter_mut() {
            node.collect()?;
        }
        pending.retain(|(_, b), line| !nodes[*b].received.contains(line.as_str()));
        if pending.is_empty() {
            return Ok(());
        }
        if start.elapsed() > MESSAGE_DEADLINE {
            let missing: Vec<String> = pending
                .keys()
                .map(|(a, b)| format!("{}->{}", ids[*a].1, ids[*b].1))
                .collect();
            return Err(format!(
                "messages not delivered after {MESSAGE_DEADLINE:?}: {missing:?}"
            ));
        }
        for (a, b) in pending.keys() {
            let text = format!("/to {} nat-lab {}->{}", ids[*b].0, ids[*a].1, ids[*b].1);
            nodes[*a].say(&text).await?;
        }
        tokio::time::sleep(RESEND_INTERVAL).await;
    }
}

/// Polls `/links` until every pair of nodes has a link both ends report; the pairs.
async fn full_mesh_links(lab: &mut Lab, nodes: &mut [Node]) -> Result<Vec<PairView>, String> {
    let start = Instant::now();
    loop {
        lab.check_daemons()?;
        let mut all: Vec<HashMap<String, Link>> = Vec::new();
        for node in nodes.iter_mut() {
            let Some(links) = node.links().await? else {
                return Err(format!(
                    "{}'s mesh-node has no /links command yet (it printed no `links: N`), \
                     so the selected candidate pairs cannot be checked",
                    node.name
                ));
            };
            all.push(links.into_iter().map(|l| (l.peer.clone(), l)).collect());
        }
        let mut pairs = Vec::new();
        let mut missing = Vec::new();
        for a in 0..nodes.len() {
            for b in a + 1..nodes.len() {
                match (all[a].get(&nodes[b].id), all[b].get(&nodes[a].id)) {
                    (Some(ab), Some(ba)) => pairs.push(PairView {
                        names: (nodes[a].name.clone(), nodes[b].name.clone()),
                        kinds: (nodes[a].kind, nodes[b].kind),
                        turn: (turn_transport(nodes[a].lan), turn_transport(nodes[b].lan)),
                        first: (ab.local.clone(), ab.remote.clone()),
                        second: (ba.local.clone(), ba.remote.clone()),
                    }),
                    _ => missing.push(format!("{}<->{}", nodes[a].name, nodes[b].name)),
                }
            }
        }
        if missing.is_empty() {
            return Ok(pairs);
        }
        if start.elapsed() > FULL_MESH_DEADLINE {
            return Err(format!(
                "no full mesh after {FULL_MESH_DEADLINE:?}: no link {missing:?}; links: {pairs:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The last lines of every log of the lab, for a failure message.
fn log_tails(logs: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(logs) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
    {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        writeln!(
            out,
            "--- {} (last {} lines)\n{}",
            path.display(),
            tail.len(),
            tail.join("\n")
        )
        .unwrap();
    }
    out
}

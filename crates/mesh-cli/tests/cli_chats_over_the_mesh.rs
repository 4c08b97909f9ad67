//! The `mesh-node` binary: three real processes on loopback join through a real bootstrap
//! server and chat: `/to <id> text` and broadcast lines, printed with their sender. `/to`
//! takes a unique prefix of a known id, and says so when a prefix is ambiguous or matches
//! nobody. `/stats` prints a short summary, `/stats --json` one JSON object. Logs are quiet
//! by default (nothing from webrtc-rs, no INFO lines across links coming up), `-v` shows
//! them. And its `/links` command: `links: N`, then one `link <peer-node-id>
//! <local-type>/<local-proto> <remote-type>/<remote-proto>` line per link, between two
//! processes, the first running the door with a STUN responder (`--serve-stun`), which the
//! second, having no `--stun`, takes from the Welcome.

mod support;

use std::process::Stdio;
use std::time::Duration;

use mesh_proto::NodeId;
use mesh_proto::identity::Keypair;
use support::{BIN, DEADLINE, serve, spawn, spawn_with};

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
        "--verbose",
        "-v",
        "RUST_LOG",
        "/to",
        "unique prefix",
        "/peers",
        "/links",
        "/stats",
        "/stats --json",
        "/help",
        "/quit",
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
    let (mut a, url) = serve(&["--degree", "2"]).await;
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

    // c broadcasts once it has a neighbour.
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

/// A key file whose node id starts with the same hex digit as `other`'s (about 16 tries).
fn key_file_sharing_first_digit(dir: &std::path::Path, name: &str, other: &NodeId) -> NodeId {
    let first = other.to_string().chars().next().unwrap();
    loop {
        let key = Keypair::generate();
        let id = key.node_id();
        if id != *other && id.to_string().starts_with(first) {
            let seed: String = key.to_seed().iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(dir.join(name), format!("{seed}\n")).unwrap();
            return id;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_takes_a_unique_prefix_and_explains_an_ambiguous_or_unknown_one() {
    // a and c get ids that begin with the same digit, so that one digit is ambiguous.
    let dir = std::env::temp_dir().join(format!("mesh-cli-prefix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a_key = Keypair::generate();
    let a_seed: String = a_key.to_seed().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(dir.join("a.key"), format!("{a_seed}\n")).unwrap();
    let a_id = a_key.node_id();
    let c_id = key_file_sharing_first_digit(&dir, "c.key", &a_id);
    let (a_key_path, c_key_path) = (dir.join("a.key"), dir.join("c.key"));

    let (mut a, url) = serve(&["--degree", "2", "--key", a_key_path.to_str().unwrap()]).await;
    assert_eq!(a.id, a_id.to_string());
    let mut b = spawn(&url).await;
    let mut c = spawn_with(&[
        "--bootstrap",
        &url,
        "--degree",
        "2",
        "--key",
        c_key_path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(c.id, c_id.to_string());
    // b knows both a and c once they are its neighbours.
    let mut peers = b.peers(2).await;
    peers.sort();
    let mut both = vec![a.id.clone(), c.id.clone()];
    both.sort();
    assert_eq!(peers, both);

    // The shortest prefix of a's id that is not one of c's: unique among b's known ids.
    let unique = (1..=a.id.len())
        .map(|n| &a.id[..n])
        .find(|prefix| !c.id.starts_with(prefix))
        .unwrap()
        .to_owned();
    b.say(&format!("/to {unique} hello by prefix")).await;
    a.expect_line(&format!("{} hello by prefix", b.id)).await;
    // Upper case and without hyphens, as a UUID may be written.
    let long: String = a.id.replace('-', "").to_uppercase()[..12].to_owned();
    b.say(&format!("/to {long} hello again")).await;
    a.expect_line(&format!("{} hello again", b.id)).await;
    // The full id still works.
    b.say(&format!("/to {} hello in full", a.id)).await;
    a.expect_line(&format!("{} hello in full", b.id)).await;

    // One digit is a prefix of both a's and c's ids: refused, naming both.
    let ambiguous = &a.id[..1];
    b.say(&format!("/to {ambiguous} lost")).await;
    let why = b
        .find_in_log(&format!("\"{ambiguous}\" is ambiguous"))
        .await;
    assert!(why.contains(&a.id) && why.contains(&c.id), "{why}");
    // A digit that begins no known id.
    let unknown = "0123456789abcdef"
        .chars()
        .find(|d| !a.id.starts_with(*d) && !c.id.starts_with(*d))
        .unwrap();
    b.say(&format!("/to {unknown} lost")).await;
    b.find_in_log(&format!("no known node id starts with \"{unknown}\""))
        .await;

    for p in [&mut a, &mut b, &mut c] {
        p.quit().await;
    }
    // Neither refused message was sent anywhere.
    for p in [&mut a, &mut c] {
        while let Ok(Some(line)) = p.stdout.next_line().await {
            assert!(!line.ends_with(" lost"), "{line}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_prints_a_summary_and_json_and_logs_stay_quiet() {
    let (mut a, url) = serve(&["--degree", "2"]).await;
    let mut b = spawn(&url).await;
    // c runs with -v: the same events are logged there, so that the quiet default is a
    // choice that the other two show, not an absence of anything to log.
    let mut c = spawn_with(&["--bootstrap", &url, "--degree", "2", "-v"]).await;
    b.peers(2).await;
    c.peers(2).await;
    a.peers(2).await;

    b.say("/stats").await;
    let mut summary = Vec::new();
    loop {
        let line = b.line().await;
        let last = line.trim_start().starts_with("bootstrap server");
        summary.push(line);
        if last {
            break;
        }
    }
    assert_eq!(summary[0], format!("node {}", b.id), "{summary:#?}");
    assert!(summary.len() <= 8, "short: {summary:#?}");
    let text = summary.join("\n");
    assert!(text.contains("neighbours 2 |"), "{text}");
    assert!(text.contains("sessions via server "), "{text}");
    assert!(!text.contains("NodeStats") && !text.contains('{'), "{text}");

    let stats = b.stats_json().await;
    assert_eq!(stats["id"], b.id.as_str());
    assert_eq!(stats["degree"], 2);
    assert_eq!(stats["server_connected"], true);
    // b's first link was signaled through the server, whichever end offered it.
    let via_server = |key: &str| stats[key].as_u64().unwrap();
    assert!(
        via_server("sessions_initiated_via_server") + via_server("sessions_answered_via_server")
            >= 1,
        "{stats}"
    );
    assert!(stats["links_up"].as_u64().unwrap() >= 2, "{stats}");

    for p in [&mut a, &mut b, &mut c] {
        p.quit().await;
    }
    // Four links came up (three of them opened through the mesh or the server): the
    // default shows none of it, and nothing of webrtc-rs.
    for (name, p) in [("a", &a), ("b", &b)] {
        for line in p.log() {
            assert!(
                !line.contains(" INFO ") && !line.contains(" DEBUG "),
                "{name}: an INFO line by default: {line}"
            );
            assert!(
                !line.contains("rtc") && !line.contains("data channel not existed"),
                "{name}: webrtc-rs logged by default: {line}"
            );
        }
    }
    assert!(
        c.log()
            .iter()
            .any(|line| line.contains(" INFO ") && line.contains("neighbour up")),
        "-v logs links coming up: {:?}",
        c.log()
    );
    assert!(
        !c.log().iter().any(|line| line.contains("rtc::")),
        "-v still leaves webrtc-rs out: {:?}",
        c.log()
    );
}

#[tokio::test]
async fn a_node_with_a_door_runs_it_and_registers_there() {
    let (mut a, url) = serve(&["--degree", "2"]).await;
    let mut b = spawn_with(&[
        "--bootstrap",
        &url,
        "--door",
        "127.0.0.1:0",
        "--degree",
        "2",
        "-v",
    ])
    .await;
    let door = b
        .find_in_log("door for neighbours that lose every link: ")
        .await;
    assert!(
        door.starts_with("ws://127.0.0.1:") && door.ends_with("/ws") && door != url,
        "{door}"
    );
    b.find_in_log("registered at our own door").await;
    let stats = b.stats_json().await;
    assert_eq!(stats["door_registered"], true, "{stats}");
    for p in [&mut a, &mut b] {
        p.quit().await;
    }
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
    let (mut a, url) = serve(&["--serve-stun", "127.0.0.1:0", "--degree", "1"]).await;
    let stun = a.find_in_log("its STUN responder: ").await;
    let stun = stun.split_whitespace().next().unwrap().to_owned();
    assert!(stun.starts_with("stun:127.0.0.1:"), "{stun}");
    let mut b = spawn_with(&["--bootstrap", &url, "--degree", "1"]).await;

    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    let on_a = a.one_link().await;
    let on_b = b.one_link().await;
    eprintln!("a: {on_a}\nb: {on_b}");
    // On loopback the local end is a host candidate (a srflx one has the same address
    // here). The remote end is the peer's host candidate, or, when the peer's first
    // connectivity check arrived before its trickled candidate did, the same address
    // learned from that check (peer-reflexive): seen once in a CI run.
    for (line, peer) in [(&on_a, &b_id), (&on_b, &a_id)] {
        let (local, remote) = parse_link(line, peer);
        assert_eq!(local, "host/udp", "{line}");
        assert!(
            ["host/udp", "prflx/udp"].contains(&remote.as_str()),
            "{line}"
        );
    }

    // b took the door's STUN server from its Welcome.
    let stats = b.stats_json().await;
    assert_eq!(stats["server_stun"], stun.as_str(), "{stats}");

    for p in [&mut a, &mut b] {
        p.quit().await;
    }
}

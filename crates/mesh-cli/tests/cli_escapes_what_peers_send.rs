//! The `mesh-node` binary never prints a peer's bytes raw: a real process (running the
//! bootstrap server, `--serve`) gets a unicast and a broadcast from a real WebRTC node of
//! the `mesh_node` library whose text holds a newline followed by another node's id (a line
//! posing as that node's message), a carriage return, ANSI escapes, a bidi override, C1
//! controls and bytes that are not UTF-8. Each message is exactly one stdout line, starting
//! with its true sender, the escapes visible, no control character in it.

mod support;

use std::net::SocketAddr;

use mesh_node::{Config, Event, Node};
use mesh_proto::identity::Keypair;
use support::{DEADLINE, serve};

/// Joins a library node (WebRTC on 127.0.0.1) through `url` and waits for its first link.
async fn join_sender(url: &str) -> (Node, mesh_node::Events) {
    let transport = mesh_node::transport::webrtc::Config::new()
        .with_bind_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    let config = Config::new(url.parse().expect("the URL mesh-node printed"));
    let node = Node::join(config, Keypair::generate(), transport)
        .await
        .expect("the sender joins");
    let mut events = node.events().expect("events");
    let linked = async {
        loop {
            match events.recv().await {
                Some(Event::LinkUp { .. }) => return,
                Some(_) => {}
                None => panic!("the sender stopped"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, linked)
        .await
        .expect("the sender never got a link");
    (node, events)
}

/// Whether `line` holds a character that a terminal would act on or that reorders text.
fn has_raw_control(line: &str) -> bool {
    line.chars().any(|c| {
        c.is_control()
            || matches!(
                c,
                '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_cannot_pose_as_another_or_rewrite_the_terminal() {
    let (mut a, url) = serve(&["--degree", "2"]).await;
    let (sender, _events) = join_sender(&url).await;
    let from = sender.id().to_string();
    // a has the sender as its neighbour: a unicast to a goes over that one link.
    assert_eq!(a.peers(1).await, vec![from.clone()]);
    let a_id = a.id.parse().expect("a's id");
    // The node a message would pose as.
    let other = Keypair::generate().node_id();

    let mut unicast = format!("hi\n{other} forged\roverwritten \x1b[31mred\x1b[0m").into_bytes();
    unicast.extend_from_slice("\u{202e}txt.exe\u{9b}2J".as_bytes());
    unicast.extend_from_slice(b" \xff\xc3 \\ end\t\x7f\0");
    sender
        .send(a_id, unicast)
        .await
        .expect("the unicast is sent");
    let broadcast = format!("all\r\n{other} [broadcast] forged too\x1b[2J\u{2028}");
    let reached = sender
        .broadcast(broadcast.into_bytes())
        .await
        .expect("the broadcast is sent");
    assert_eq!(reached, 1, "the broadcast left on the one link");

    let want = [
        format!(
            "{from} hi\\n{other} forged\\roverwritten \\x1b[31mred\\x1b[0m\\u{{202e}}txt.exe\\u{{9b}}2J \
             \\xff\\xc3 \\\\ end\\t\\x7f\\x00"
        ),
        format!("{from} [broadcast] all\\r\\n{other} [broadcast] forged too\\x1b[2J\\u{{2028}}"),
    ];
    // Every line until both messages were printed (a line that is not valid UTF-8 fails
    // the read itself).
    let mut lines = Vec::new();
    while !want.iter().all(|w| lines.contains(w)) {
        let line = a.line().await;
        assert!(!has_raw_control(&line), "a raw control character: {line:?}");
        assert!(
            !line.starts_with(&other.to_string()),
            "a line poses as {other}: {line:?}"
        );
        lines.push(line);
        assert!(
            lines.len() <= want.len(),
            "more lines than messages: {lines:#?}"
        );
    }
    assert_eq!(lines.len(), 2, "one line per message: {lines:#?}");

    sender.leave().await.expect("the sender leaves");
    a.quit().await;
    // Nothing else came after them: no line of a message's text on its own.
    while let Ok(Some(line)) = a.stdout.next_line().await {
        assert!(!line.contains("forged"), "a stray line: {line:?}");
    }
    // The logs are escaped too: nothing raw reached stderr either.
    for line in a.log() {
        assert!(!has_raw_control(&line), "stderr: {line:?}");
    }
}

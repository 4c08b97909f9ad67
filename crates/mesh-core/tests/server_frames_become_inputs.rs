//! `Node::handle_server_frame`: the one place where a frame from a registered server
//! connection becomes an input (native and browser drivers both call it).

use mesh_core::{Config, Event, Input, Instant, Node, Output};
use mesh_proto::identity::Keypair;
use mesh_proto::{ErrorCode, Frame, ServerUrl};

fn registered() -> (Node, ServerUrl, Instant) {
    let now = Instant::now();
    let server: ServerUrl = "ws://127.0.0.1:1/ws".parse().unwrap();
    let config = Config::default().with_bootstrap(Some(server.clone()));
    let mut node = Node::new(config, Keypair::generate(), now, 1).unwrap();
    node.handle_input(
        now,
        Input::Registered {
            server: server.clone(),
            peers: vec![],
        },
    );
    while node.poll_output().is_some() {}
    (node, server, now)
}

#[test]
fn peers_from_the_signaling_server_start_an_entry_session() {
    let (mut node, server, now) = registered();
    let peer = Keypair::generate().node_id();
    let frame = Frame::Peers { peers: vec![peer] };
    assert_eq!(node.handle_server_frame(now, server, frame), None);
    let opened = std::iter::from_fn(|| node.poll_output())
        .any(|o| matches!(o, Output::OpenSession { peer: p, .. } if p == peer));
    assert!(opened, "the sampled peer gets the entry session");
}

#[test]
fn frames_not_for_the_core_come_back_to_the_driver() {
    let (mut node, server, now) = registered();
    let other: ServerUrl = "ws://127.0.0.1:2/ws".parse().unwrap();
    let peers = Frame::Peers {
        peers: vec![Keypair::generate().node_id()],
    };
    // `Peers` from a server the node does not signal through.
    assert_eq!(
        node.handle_server_frame(now, other, peers.clone()),
        Some(peers)
    );
    // A fatal error: the server closes the connection next; the driver logs it.
    let fatal = Frame::Error {
        code: ErrorCode::SHUTTING_DOWN,
        target: None,
        message: "bye".into(),
    };
    assert_eq!(
        node.handle_server_frame(now, server.clone(), fatal.clone()),
        Some(fatal)
    );
    // A non-fatal one is the core's.
    let busy = Frame::Error {
        code: ErrorCode::TARGET_BUSY,
        target: Some(Keypair::generate().node_id()),
        message: String::new(),
    };
    assert_eq!(node.handle_server_frame(now, server, busy), None);
    assert!(
        !std::iter::from_fn(|| node.poll_output())
            .any(|o| matches!(o, Output::Event(Event::ServerDisconnected { .. })))
    );
}

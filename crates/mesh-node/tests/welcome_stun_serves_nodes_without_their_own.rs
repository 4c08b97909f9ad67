//! A node with no STUN server of its own uses the one its bootstrap server announces in the
//! `Welcome` (`stun:<host of the bootstrap URL>:<stun_port>`); a node with its own keeps it.
//! Observed from outside: the server's STUN answer counter, with real webrtc-rs nodes on
//! 127.0.0.1.

mod support;

use mesh_node::Node;
use mesh_node::transport::Transport;
use mesh_node::transport::webrtc::{self, IceServer, WebRtcTransport};
use support::{Door, wait_until};

const ANSWERS: &str = "bootstrap_stun_answers_total";

async fn wait_linked(a: &Node, b: &Node) {
    wait_until("a and b are linked", || async {
        let linked =
            a.neighbours().await.unwrap() == [b.id()] && b.neighbours().await.unwrap() == [a.id()];
        linked.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_stun_use_the_door_stun() {
    let door = Door::start(true).await;
    let stun = format!("stun:127.0.0.1:{}", door.stun.unwrap().port());
    let a = support::webrtc_node(&door.url(), Vec::new()).await;
    let b = support::webrtc_node(&door.url(), Vec::new()).await;
    assert_eq!(a.stats().await.unwrap().server_stun, Some(stun.clone()));
    assert_eq!(b.stats().await.unwrap().server_stun, Some(stun));
    wait_linked(&a, &b).await;
    // Each side's PeerConnection asked the door for its reflexive address.
    wait_until("the door answered STUN requests", || async {
        (door.metric(ANSWERS).await >= 2).then_some(())
    })
    .await;
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_their_own_stun_keep_it() {
    let door = Door::start(true).await;
    let other = Door::start(true).await;
    let own = vec![IceServer::stun(format!("stun:{}", other.stun.unwrap()))];
    let a = support::webrtc_node(&door.url(), own.clone()).await;
    let b = support::webrtc_node(&door.url(), own).await;
    // The announcement is recorded either way; the transport decides.
    assert!(a.stats().await.unwrap().server_stun.is_some());
    wait_linked(&a, &b).await;
    wait_until("the nodes' own STUN server answered", || async {
        (other.metric(ANSWERS).await >= 2).then_some(())
    })
    .await;
    assert_eq!(
        door.metric(ANSWERS).await,
        0,
        "the door's STUN was not used"
    );
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    door.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn a_door_without_a_responder_announces_none() {
    let door = Door::start(false).await;
    let a = support::webrtc_node(&door.url(), Vec::new()).await;
    assert_eq!(a.stats().await.unwrap().server_stun, None);
    a.leave().await.unwrap();
    door.stop().await;
}

#[tokio::test]
async fn the_transport_adds_the_server_stun_only_without_its_own() {
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let turn = IceServer::turn("turn:192.0.2.1:3478", "u", "p");
    let transport = WebRtcTransport::new(
        webrtc::Config::new().with_ice_servers(vec![turn.clone()]),
        tx.clone(),
    );
    assert_eq!(transport.ice_servers(), std::slice::from_ref(&turn));
    transport.use_server_stun(Some("stun:door.example:3478".into()));
    assert_eq!(
        transport.ice_servers(),
        [turn.clone(), IceServer::stun("stun:door.example:3478")]
    );
    // A later Welcome without a responder takes it back.
    transport.use_server_stun(None);
    assert_eq!(transport.ice_servers(), [turn]);

    let stun = IceServer::stun("stun:192.0.2.2:3478");
    let transport = WebRtcTransport::new(
        webrtc::Config::new().with_ice_servers(vec![stun.clone()]),
        tx,
    );
    transport.use_server_stun(Some("stun:door.example:3478".into()));
    assert_eq!(transport.ice_servers(), [stun]);
}

#[tokio::test]
async fn join_refuses_unusable_ice_servers() {
    let door = Door::start(false).await;
    for (server, what) in [
        (
            IceServer::stun("stun.example.org:3478"),
            "not a STUN or TURN URL",
        ),
        (
            IceServer::turn("turn:192.0.2.1:3478", "", ""),
            "needs a username and a credential",
        ),
    ] {
        let transport = webrtc::Config::new().with_ice_servers(vec![server]);
        let err = Node::join(
            mesh_node::Config::new(door.url().parse().expect("a ws:// URL")),
            mesh_proto::identity::Keypair::generate(),
            transport,
        )
        .await
        .expect_err("refused");
        assert!(
            matches!(&err, mesh_node::Error::IceServer { why, .. } if why.contains(what)),
            "{err}"
        );
    }
    door.stop().await;
}

//! Relaying: unicast is delivered as transfer, broadcast reaches every other peer of the
//! room once, unknown targets get an error and the sender stays connected.

use bootstrap_server::Config;
use mesh_e2e::{Client, TestServer};
use mesh_proto::{ErrorCode, Frame, NodeId};

#[tokio::test]
async fn unicast_is_delivered_as_transfer_with_the_sender() {
    let server = TestServer::start(Config::default()).await;
    let (mut a, _) = Client::join(&server.url(), "lobby").await;
    let (mut b, _) = Client::join(&server.url(), "lobby").await;
    a.unicast_to(&mut b, b"v=0 offer").await;
    b.unicast_to(&mut a, b"v=0 answer").await;
    // Payloads are opaque: arbitrary bytes, empty included, pass unchanged.
    let all_bytes: Vec<u8> = (0..=255).collect();
    a.unicast_to(&mut b, &all_bytes).await;
    a.unicast_to(&mut b, &[]).await;
}

#[tokio::test]
async fn unknown_target_gets_an_error_naming_it_and_the_sender_stays() {
    let server = TestServer::start(Config::default()).await;
    let (mut a, _) = Client::join(&server.url(), "lobby").await;
    let (mut b, _) = Client::join(&server.url(), "lobby").await;
    let nobody = NodeId::from_bytes([0xAB; 16]);
    a.send(&Frame::Unicast {
        to: nobody,
        payload: b"hello?".to_vec(),
    })
    .await;
    assert_eq!(a.expect_error(ErrorCode::UNKNOWN_PEER).await, Some(nobody));
    // A peer of another room is unknown too.
    let (other_room, _) = Client::join(&server.url(), "elsewhere").await;
    a.send(&Frame::Unicast {
        to: other_room.id(),
        payload: vec![1],
    })
    .await;
    assert_eq!(
        a.expect_error(ErrorCode::UNKNOWN_PEER).await,
        Some(other_room.id())
    );
    // Still connected and useful.
    a.unicast_to(&mut b, b"after the error").await;
}

#[tokio::test]
async fn broadcast_reaches_every_other_peer_of_the_room_once() {
    let server = TestServer::start(Config::default()).await;
    let url = server.url();
    let mut room: Vec<Client> = Vec::new();
    for _ in 0..6 {
        room.push(Client::join(&url, "lobby").await.0);
    }
    let (mut outsider, _) = Client::join(&url, "elsewhere").await;

    let sender = room[0].id();
    room[0]
        .send(&Frame::Broadcast {
            payload: b"hello all".to_vec(),
        })
        .await;
    // A unicast marker after the broadcast: everyone must see the broadcast exactly once
    // before the marker, and the sender must not see its own broadcast.
    for i in 1..room.len() {
        match room[i].recv_frame().await {
            Frame::TransferBroadcast { from, payload } => {
                assert_eq!(from, sender);
                assert_eq!(payload, b"hello all");
            }
            other => panic!("expected the broadcast, got {other:?}"),
        }
        let (head, tail) = room.split_at_mut(i);
        head[0].unicast_to(&mut tail[0], b"marker").await;
    }
    let (me, outsider_peer) = (room[0].id(), outsider.id());
    outsider
        .send(&Frame::Unicast {
            to: me,
            payload: b"marker".to_vec(),
        })
        .await;
    assert_eq!(
        outsider.expect_error(ErrorCode::UNKNOWN_PEER).await,
        Some(me)
    );
    let (mut o2, _) = Client::join(&url, "elsewhere").await;
    o2.send(&Frame::Unicast {
        to: outsider_peer,
        payload: b"marker".to_vec(),
    })
    .await;
    match outsider.recv_frame().await {
        Frame::Transfer { payload, .. } => {
            assert_eq!(payload, b"marker", "no broadcast leaked across rooms")
        }
        other => panic!("expected the marker, got {other:?}"),
    }
    let (first, rest) = room.split_at_mut(1);
    rest[0].unicast_to(&mut first[0], b"marker").await;
}

#[tokio::test]
async fn get_peers_returns_a_bounded_fresh_sample() {
    let server = TestServer::start(Config::default().with_max_sample(4)).await;
    let url = server.url();
    let mut clients = Vec::new();
    for _ in 0..7 {
        clients.push(Client::join(&url, "lobby").await.0);
    }
    let me = clients[0].id();
    clients[0].send(&Frame::GetPeers { max: 2 }).await;
    let Frame::Peers { peers } = clients[0].recv_frame().await else {
        panic!("expected Peers")
    };
    assert_eq!(peers.len(), 2);
    clients[0].send(&Frame::GetPeers { max: 1000 }).await;
    let Frame::Peers { peers } = clients[0].recv_frame().await else {
        panic!("expected Peers")
    };
    assert_eq!(peers.len(), 4, "capped by max_sample");
    assert!(!peers.contains(&me));
}

#[tokio::test]
async fn a_departed_peer_is_removed_at_once() {
    let server = TestServer::start(Config::default()).await;
    let (mut a, _) = Client::join(&server.url(), "lobby").await;
    let (b, _) = Client::join(&server.url(), "lobby").await;
    let gone = b.id();
    drop(b);
    // The server notices the closed socket and drops the peer from the room.
    a.wait_until_gone(gone, "the departed peer is removed")
        .await;
    a.send(&Frame::Unicast {
        to: gone,
        payload: vec![],
    })
    .await;
    assert_eq!(a.expect_error(ErrorCode::UNKNOWN_PEER).await, Some(gone));
}

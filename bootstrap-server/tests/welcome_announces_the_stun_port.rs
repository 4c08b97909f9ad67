//! The `Welcome` announces the bound port of the server's STUN responder (`stun_port`), and
//! none when the server runs no responder: a real WebSocket client registers with the real
//! server on 127.0.0.1, port 0.

use std::time::Duration;

use bootstrap_server::Config;
use futures_util::{SinkExt, StreamExt};
use mesh_proto::identity::{Keypair, register_message};
use mesh_proto::{Frame, RoomName};
use mesh_testkit::TestServer;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(10);

/// Registers a fresh key in `room` at `ws://{addr}/ws` and returns the `Welcome`.
async fn welcome(addr: std::net::SocketAddr) -> Frame {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let Frame::Challenge { nonce, .. } = recv(&mut ws).await else {
        panic!("the server sends a Challenge first");
    };
    let key = Keypair::generate();
    let room: RoomName = "lobby".parse().unwrap();
    let register = Frame::Register {
        public_key: key.public(),
        node_id: key.node_id(),
        signature: key.sign(&register_message(&nonce, &key.node_id(), &room)),
        room,
    };
    let frame = next_after(&mut ws, register).await;
    let _ = ws.close(None).await;
    assert!(
        matches!(&frame, Frame::Welcome { node_id, .. } if *node_id == key.node_id()),
        "expected our Welcome, got {frame:?}"
    );
    frame
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends `frame` and returns the next frame the server sends.
async fn next_after(ws: &mut Ws, frame: Frame) -> Frame {
    let bytes = mesh_proto::encode(&frame).unwrap();
    ws.send(Message::Binary(bytes.into())).await.unwrap();
    recv(ws).await
}

/// The next frame the server sends, skipping pings.
async fn recv(ws: &mut Ws) -> Frame {
    loop {
        match timeout(DEADLINE, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Binary(bytes))) => return mesh_proto::decode(&bytes).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_welcome_carries_the_bound_stun_port() {
    let config = Config::default().with_stun_listen(Some("127.0.0.1:0".parse().unwrap()));
    let server = TestServer::start(config).await;
    let addr = server.addr();
    let stun = server.stun_addr().expect("stun_listen was set");
    assert_ne!(stun.port(), 0);

    let Frame::Welcome { stun_port, .. } = welcome(addr).await else {
        unreachable!("welcome() checked the kind");
    };
    assert_eq!(stun_port, Some(stun.port()));

    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_responder_the_welcome_has_no_stun_port() {
    let server = TestServer::start(Config::default()).await;
    let addr = server.addr();
    assert_eq!(server.stun_addr(), None);

    let Frame::Welcome { stun_port, .. } = welcome(addr).await else {
        unreachable!("welcome() checked the kind");
    };
    assert_eq!(stun_port, None);

    server.stop().await.unwrap();
}

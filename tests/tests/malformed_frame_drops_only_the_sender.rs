//! Bad input: a clear error frame, the offender is dropped, everyone else carries on, and
//! nothing already accepted for the offender is lost.

use bootstrap_server::Config;
use mesh_e2e::{Client, TestServer};
use mesh_proto::{ErrorCode, Frame, NodeId, PROTOCOL_VERSION};
use tokio_tungstenite::tungstenite::Message;

async fn offender_and_bystanders(server: &TestServer) -> (Client, Client, Client) {
    let (offender, _) = Client::join(&server.url(), "lobby").await;
    let (a, _) = Client::join(&server.url(), "lobby").await;
    let (b, _) = Client::join(&server.url(), "lobby").await;
    (offender, a, b)
}

async fn check(input: Message, code: ErrorCode, ws_close: u16) {
    let server = TestServer::start(Config::default()).await;
    let (mut offender, mut a, mut b) = offender_and_bystanders(&server).await;
    // Accepted for the offender before it misbehaves: must still reach it, in order.
    a.send(&Frame::Unicast {
        to: offender.id(),
        payload: b"queued first".to_vec(),
    })
    .await;
    let Frame::Transfer { payload, .. } = offender.recv_frame().await else {
        panic!("transfer")
    };
    assert_eq!(payload, b"queued first");
    offender.send_raw(input).await;
    assert_eq!(offender.expect_fatal(code).await, ws_close);
    a.unicast_to(&mut b, b"carry on").await;
    b.unicast_to(&mut a, b"carry on").await;
    // The offender is gone from the room.
    let gone = offender.id();
    a.wait_until_gone(gone, "the offender is removed").await;
}

#[tokio::test]
async fn garbage_bytes() {
    check(
        Message::Binary(vec![PROTOCOL_VERSION, 0xFF, 0xFF, 0x00].into()),
        ErrorCode::MALFORMED,
        1002,
    )
    .await;
}

#[tokio::test]
async fn empty_message() {
    check(
        Message::Binary(Vec::new().into()),
        ErrorCode::MALFORMED,
        1002,
    )
    .await;
}

#[tokio::test]
async fn truncated_frame() {
    let bytes = mesh_proto::encode(&Frame::Unicast {
        to: NodeId::from_bytes([1; 16]),
        payload: vec![1; 40],
    })
    .unwrap();
    check(
        Message::Binary(bytes[..bytes.len() - 3].to_vec().into()),
        ErrorCode::MALFORMED,
        1002,
    )
    .await;
}

#[tokio::test]
async fn trailing_bytes() {
    let mut bytes = mesh_proto::encode(&Frame::GetPeers { max: 1 }).unwrap();
    bytes.push(0);
    check(Message::Binary(bytes.into()), ErrorCode::MALFORMED, 1002).await;
}

#[tokio::test]
async fn unknown_version() {
    let mut bytes = mesh_proto::encode(&Frame::GetPeers { max: 1 }).unwrap();
    bytes[0] = PROTOCOL_VERSION + 1;
    check(
        Message::Binary(bytes.into()),
        ErrorCode::UNSUPPORTED_VERSION,
        1002,
    )
    .await;
}

#[tokio::test]
async fn text_message() {
    check(
        Message::Text("{\"type\":\"unicast\"}".into()),
        ErrorCode::MALFORMED,
        1002,
    )
    .await;
}

#[tokio::test]
async fn server_to_client_frame() {
    unexpected(Frame::Transfer {
        from: NodeId::from_bytes([2; 16]),
        payload: vec![],
    })
    .await;
}

#[tokio::test]
async fn node_to_neighbour_frame() {
    unexpected(Frame::Doors {
        doors: vec![mesh_proto::Door {
            node: NodeId::from_bytes([3; 16]),
            url: "ws://127.0.0.1:1/ws".parse().unwrap(),
        }],
    })
    .await;
}

/// A well-formed frame the server never takes from a client ends the session with
/// `UNEXPECTED_FRAME`, closed with 1002.
async fn unexpected(frame: Frame) {
    let bytes = mesh_proto::encode(&frame).unwrap();
    check(
        Message::Binary(bytes.into()),
        ErrorCode::UNEXPECTED_FRAME,
        1002,
    )
    .await;
}

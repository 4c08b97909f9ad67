//! A server with `--id-difficulty` announces it in the `Challenge`, refuses a `Register`
//! whose id does not meet it with `ID_BELOW_DIFFICULTY` and closes the connection, and
//! welcomes an id that meets it: a real WebSocket client on the real server, 127.0.0.1,
//! port 0.

use std::time::Duration;

use bootstrap_server::Config;
use futures_util::{SinkExt, StreamExt};
use mesh_proto::identity::{Keypair, register_message};
use mesh_proto::{ErrorCode, Frame, RoomName, puzzle};
use mesh_testkit::TestServer;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const DEADLINE: Duration = Duration::from_secs(10);
/// Small enough to mine in a test (256 keys on average), large enough that a fresh key is
/// nearly always below it.
const DIFFICULTY: u32 = 8;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, reads the `Challenge`, registers `key` in `lobby`: the announced difficulty,
/// the answer, and the socket.
async fn register(addr: std::net::SocketAddr, key: &Keypair) -> (u32, Frame, Ws) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let Frame::Challenge { nonce, limits } = recv(&mut ws).await else {
        panic!("the server sends a Challenge first");
    };
    let room: RoomName = "lobby".parse().unwrap();
    let register = Frame::Register {
        public_key: key.public(),
        node_id: key.node_id(),
        signature: key.sign(&register_message(&nonce, &key.node_id(), &room)),
        room,
    };
    let bytes = mesh_proto::encode(&register).unwrap();
    ws.send(Message::Binary(bytes.into())).await.unwrap();
    let answer = recv(&mut ws).await;
    (limits.id_difficulty, answer, ws)
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

/// A fresh key whose id is below `DIFFICULTY` (nearly every key is: 255 in 256).
fn cheap_key() -> Keypair {
    std::iter::repeat_with(Keypair::generate)
        .find(|k| !puzzle::meets(&k.node_id(), DIFFICULTY))
        .unwrap()
}

#[tokio::test]
async fn an_id_below_the_difficulty_is_refused_and_one_that_meets_it_is_welcomed() {
    let server = TestServer::start(Config::default().with_id_difficulty(DIFFICULTY)).await;
    let addr = server.addr();

    let cheap = cheap_key();
    let (announced, answer, mut ws) = register(addr, &cheap).await;
    assert_eq!(
        announced, DIFFICULTY,
        "the Challenge announces the difficulty"
    );
    let Frame::Error {
        code,
        target,
        message,
    } = answer
    else {
        panic!("expected an Error frame, got {answer:?}");
    };
    assert_eq!(code, ErrorCode::ID_BELOW_DIFFICULTY);
    assert!(code.is_fatal());
    assert_eq!(target, None);
    let have = puzzle::difficulty(&cheap.node_id());
    assert!(
        message.contains(&format!("has difficulty {have}, this server requires 8"))
            && message.contains("--id-difficulty 8"),
        "the message says what is wrong and what to do: {message}"
    );
    // Fatal: the server closes the connection (policy violation), with the code's label.
    match timeout(DEADLINE, ws.next()).await.expect("a close in time") {
        Some(Ok(Message::Close(Some(close)))) => {
            assert_eq!(close.code, CloseCode::Policy);
            assert!(
                close.reason.starts_with("id_below_difficulty: "),
                "{close:?}"
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }

    let mined = Keypair::generate_with_difficulty(DIFFICULTY).unwrap();
    assert!(puzzle::difficulty(&mined.node_id()) >= DIFFICULTY);
    let (_, answer, mut ws) = register(addr, &mined).await;
    assert!(
        matches!(&answer, Frame::Welcome { node_id, .. } if *node_id == mined.node_id()),
        "expected our Welcome, got {answer:?}"
    );
    let _ = ws.close(None).await;

    let metrics = server.metrics().await;
    assert_eq!(
        metrics.value("bootstrap_errors_total{code=\"id_below_difficulty\"}"),
        1.0
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn by_default_there_is_no_puzzle() {
    let server = TestServer::start(Config::default()).await;
    let cheap = cheap_key();
    let (announced, answer, mut ws) = register(server.addr(), &cheap).await;
    assert_eq!(announced, 0);
    assert!(
        matches!(&answer, Frame::Welcome { node_id, .. } if *node_id == cheap.node_id()),
        "expected our Welcome, got {answer:?}"
    );
    let _ = ws.close(None).await;
    server.stop().await.unwrap();
}

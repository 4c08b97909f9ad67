//! A client that sends more frames at once than its burst allows is closed with
//! `RATE_LIMITED`, and reads that `Error` frame and the close, even when the server's answers
//! are still on their way to it: the server reads what the client had already sent before
//! it closes the TCP connection. (Closed with unread input, a socket is reset, and the reset
//! discards what the server had written but not yet sent: the answers, the `Error` frame and
//! the close.)

use bootstrap_server::Config;
use mesh_e2e::{Client, Received, TestServer};
use mesh_proto::{ErrorCode, Frame};
use tokio_tungstenite::tungstenite::Message;

/// More frames than the default burst (100), all written before the client reads anything:
/// about 80 KiB.
const FLOOD: usize = 150;
/// Peers in the room besides the flooder: each `Peers` answer lists this many.
const OTHERS: usize = 8;

#[tokio::test]
async fn a_flooder_reads_its_rate_limit_error_and_the_close() {
    let config = Config::default();
    let burst = config.frame_burst as usize;
    let server = TestServer::start(config).await;
    let mut others = Vec::new();
    for _ in 0..OTHERS {
        others.push(Client::join(&server.url(), "lobby").await.0);
    }
    // Each try is one connection; the reset this guards against came 10 times in 10.
    for attempt in 0..3 {
        // A small receive window: the ~100 answers of ~150 bytes (and the Error frame after
        // them) are still in the server's socket when the server ends the session, as they
        // are for a client across a real network.
        let mut flooder = Client::connect_with_receive_buffer(&server.url(), 2048).await;
        flooder.register("lobby").await;
        // Every other frame asks for peers (an answer to read); the rest are broadcasts of
        // 1 KiB, so the flood is far more than the server reads in one go (8 KiB).
        let get_peers = mesh_proto::encode(&Frame::GetPeers { max: 64 }).unwrap();
        let broadcast = mesh_proto::encode(&Frame::Broadcast {
            payload: vec![7; 1024],
        })
        .unwrap();
        flooder
            .send_at_once((0..FLOOD).map(|i| {
                let frame = if i % 2 == 0 { &get_peers } else { &broadcast };
                Message::Binary(frame.clone().into())
            }))
            .await;
        let mut answers = 0;
        loop {
            match flooder.recv().await {
                Received::Frame(Frame::Peers { peers }) => {
                    assert_eq!(peers.len(), OTHERS);
                    answers += 1;
                }
                Received::Frame(Frame::Error { code, .. }) => {
                    assert_eq!(code, ErrorCode::RATE_LIMITED, "attempt {attempt}");
                    break;
                }
                Received::Closed(close) => panic!(
                    "attempt {attempt}: the connection ended after {answers} answers without \
                     the RATE_LIMITED error frame (close frame: {close:?})"
                ),
                Received::Frame(other) => panic!("attempt {attempt}: unexpected {other:?}"),
            }
        }
        // Registering took one token of the burst, and half the frames that passed asked for
        // peers; the refill during the test adds a few.
        assert!(
            ((burst - 1) / 2..FLOOD / 2).contains(&answers),
            "attempt {attempt}: {answers} answers before the limit, burst {burst}"
        );
        match flooder.recv().await {
            Received::Closed(Some(close)) => assert_eq!(u16::from(close.code), 1008),
            other => panic!("attempt {attempt}: expected the close frame, got {other:?}"),
        }
    }
}

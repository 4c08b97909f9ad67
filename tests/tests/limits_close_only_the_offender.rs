//! Every configured limit: a breach gets an error frame with its code and the connection
//! is closed; everyone else carries on.

use bootstrap_server::Config;
use mesh_e2e::{Client, DEADLINE, Received, TestServer, wait_until};
use mesh_proto::{ErrorCode, Frame};
use tokio_tungstenite::tungstenite::Message;

/// Two bystanders that must keep working whatever the offender does.
async fn bystanders(server: &TestServer) -> (Client, Client) {
    let (a, _) = Client::join(&server.url(), "lobby").await;
    let (b, _) = Client::join(&server.url(), "lobby").await;
    (a, b)
}

async fn still_fine(a: &mut Client, b: &mut Client) {
    a.unicast_to(b, b"still fine").await;
    b.unicast_to(a, b"still fine").await;
}

/// Frames of at most 1 KiB, payloads of at most 512 bytes.
fn small_frames() -> Config {
    Config::default()
        .with_max_frame_size(1024)
        .with_max_payload_size(512)
}

#[tokio::test]
async fn connection_limit_refuses_the_excess_and_frees_on_leave() {
    let server = TestServer::start(Config::default().with_max_connections(2)).await;
    let (mut a, mut b) = bystanders(&server).await;
    let refused = Client::try_connect(&server.url()).await.err();
    assert_eq!(refused, Some(ErrorCode::SERVER_FULL));
    still_fine(&mut a, &mut b).await;

    // Once a connection ends, its permit is free again.
    drop(b);
    let mut c = wait_until("the permit is released", DEADLINE, async || {
        Client::try_connect(&server.url()).await
    })
    .await;
    c.register("lobby").await;
    assert_eq!(
        c.limits.max_payload_size as usize,
        Config::default().max_payload_size
    );
    a.unicast_to(&mut c, b"hello newcomer").await;
}

#[tokio::test]
async fn oversized_frame_is_refused() {
    let server = TestServer::start(small_frames()).await;
    let (mut a, mut b) = bystanders(&server).await;
    let (mut offender, _) = Client::join(&server.url(), "lobby").await;
    let mut bytes = mesh_proto::encode(&Frame::Broadcast {
        payload: vec![0; 1500],
    })
    .unwrap();
    bytes.truncate(1500);
    offender.send_raw(Message::Binary(bytes.into())).await;
    assert_eq!(
        offender.expect_fatal(ErrorCode::FRAME_TOO_LARGE).await,
        1009
    );
    still_fine(&mut a, &mut b).await;
}

#[tokio::test]
async fn far_oversized_frame_is_cut_by_the_websocket_layer() {
    let server = TestServer::start(small_frames()).await;
    let (mut a, mut b) = bystanders(&server).await;
    let (mut offender, _) = Client::join(&server.url(), "lobby").await;
    // Far beyond the limit: the server must not buffer it, and drops the connection.
    offender
        .try_send_raw(Message::Binary(vec![1; 1 << 20].into()))
        .await;
    loop {
        match offender.recv().await {
            Received::Closed(_) => break,
            Received::Frame(Frame::Error { .. }) => continue,
            Received::Frame(other) => panic!("unexpected {other:?}"),
        }
    }
    still_fine(&mut a, &mut b).await;
}

#[tokio::test]
async fn oversized_payload_is_refused() {
    let server = TestServer::start(Config::default().with_max_payload_size(100)).await;
    let (mut a, mut b) = bystanders(&server).await;
    let (mut offender, _) = Client::join(&server.url(), "lobby").await;
    offender
        .send(&Frame::Unicast {
            to: a.id(),
            payload: vec![7; 101],
        })
        .await;
    assert_eq!(
        offender.expect_fatal(ErrorCode::PAYLOAD_TOO_LARGE).await,
        1009
    );
    // Exactly the limit passes.
    let (mut ok, _) = Client::join(&server.url(), "lobby").await;
    ok.unicast_to(&mut a, &[7; 100]).await;
    still_fine(&mut a, &mut b).await;
}

#[tokio::test]
async fn frame_rate_limit_closes_the_flooder() {
    let config = Config::default()
        .with_frames_per_second(5)
        .with_frame_burst(10);
    let server = TestServer::start(config).await;
    let (mut a, mut b) = bystanders(&server).await;
    let (mut flooder, _) = Client::join(&server.url(), "lobby").await;
    // The registration used one token; 9 more pass, then the burst is spent.
    for _ in 0..50 {
        if !flooder
            .try_send_raw(Message::Binary(
                mesh_proto::encode(&Frame::GetPeers { max: 0 })
                    .unwrap()
                    .into(),
            ))
            .await
        {
            break;
        }
    }
    let mut answers = 0;
    loop {
        match flooder.recv().await {
            Received::Frame(Frame::Peers { .. }) => answers += 1,
            Received::Frame(Frame::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::RATE_LIMITED);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (9..=11).contains(&answers),
        "the burst was honoured before the limit: {answers}"
    );
    assert!(matches!(flooder.recv().await, Received::Closed(_)));
    still_fine(&mut a, &mut b).await;
}

#[tokio::test]
async fn room_limit_refuses_the_extra_peer() {
    let server = TestServer::start(Config::default().with_max_peers_per_room(2)).await;
    let (mut a, mut b) = bystanders(&server).await;
    let mut extra = Client::connect(&server.url()).await;
    extra.send(&extra.register_frame("lobby")).await;
    extra.expect_fatal(ErrorCode::ROOM_FULL).await;
    // Another room still has space.
    let (_elsewhere, _) = Client::join(&server.url(), "elsewhere").await;
    still_fine(&mut a, &mut b).await;
}

#[tokio::test]
async fn a_client_that_never_reads_only_loses_its_own_frames() {
    let config = Config::default()
        .with_outbound_queue(4)
        .with_frames_per_second(10_000)
        .with_frame_burst(10_000);
    let server = TestServer::start(config).await;
    let (mut a, mut b) = bystanders(&server).await;
    let (mut stalled, _) = Client::join(&server.url(), "lobby").await;
    let target = stalled.id();
    // The stalled client never reads; flood it with large unicasts until its queue (and
    // the socket buffers beneath it) are full and the server says it is busy.
    let payload = vec![0u8; 8 * 1024];
    let mut busy = false;
    for _ in 0..2000 {
        a.send(&Frame::Unicast {
            to: target,
            payload: payload.clone(),
        })
        .await;
        if let Ok(frame) =
            tokio::time::timeout(std::time::Duration::from_millis(5), a.recv_frame()).await
        {
            match frame {
                Frame::Error {
                    code, target: t, ..
                } if code == ErrorCode::TARGET_BUSY => {
                    assert_eq!(t, Some(target));
                    busy = true;
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(busy, "the server never reported the stalled target busy");
    // Unicasts still in flight may be refused too; a GetPeers answer marks the end of them.
    a.send(&Frame::GetPeers { max: 1 }).await;
    loop {
        match a.recv_frame().await {
            Frame::Peers { .. } => break,
            Frame::Error { code, .. } => assert_eq!(code, ErrorCode::TARGET_BUSY),
            other => panic!("unexpected {other:?}"),
        }
    }
    still_fine(&mut a, &mut b).await;
    // The stalled client eventually reads what was accepted for it, in order.
    match stalled.recv_frame().await {
        Frame::Transfer { from, payload: got } => {
            assert_eq!(from, a.id());
            assert_eq!(got.len(), payload.len());
        }
        other => panic!("unexpected {other:?}"),
    }
}

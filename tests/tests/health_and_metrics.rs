//! `/healthz` and `/metrics` report what the server did, from its own counters.

use bootstrap_server::Config;
use mesh_e2e::{Client, Metrics, TestServer};
use mesh_proto::{ErrorCode, Frame, NodeId};

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::start(Config::default()).await;
    assert_eq!(server.http_get("/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(server.http_get("/nope").await.0, 404);
}

#[tokio::test]
async fn metrics_count_connections_frames_errors_and_latency() {
    let server = TestServer::start(Config::default()).await;
    let (mut a, _) = Client::join(&server.url(), "lobby").await;
    let (mut b, _) = Client::join(&server.url(), "lobby").await;
    let (_c, _) = Client::join(&server.url(), "other").await;
    a.unicast_to(&mut b, b"one").await;
    a.unicast_to(&mut b, b"two").await;
    a.send(&Frame::Unicast {
        to: NodeId::from_bytes([0; 16]),
        payload: vec![],
    })
    .await;
    a.expect_error(ErrorCode::UNKNOWN_PEER).await;
    a.send(&Frame::Broadcast {
        payload: b"all".to_vec(),
    })
    .await;
    b.recv_frame().await;

    let (status, text) = server.http_get("/metrics").await;
    assert_eq!(status, 200);
    let metrics: Metrics = text.parse().expect("Prometheus text");
    let m = |series: &str| metrics.value(series);
    assert_eq!(m("bootstrap_connections"), 3.0);
    assert_eq!(m("bootstrap_peers"), 3.0);
    assert_eq!(m("bootstrap_rooms"), 2.0);
    assert_eq!(m("bootstrap_registrations_total"), 3.0);
    assert_eq!(m("bootstrap_frames_in_total{kind=\"unicast\"}"), 3.0);
    assert_eq!(m("bootstrap_frames_in_total{kind=\"broadcast\"}"), 1.0);
    assert_eq!(m("bootstrap_frames_out_total{kind=\"transfer\"}"), 2.0);
    assert_eq!(
        m("bootstrap_frames_out_total{kind=\"transfer_broadcast\"}"),
        1.0
    );
    assert_eq!(m("bootstrap_errors_total{code=\"unknown_peer\"}"), 1.0);
    assert_eq!(m("bootstrap_unicast_latency_seconds_count"), 2.0);
    assert!(m("bootstrap_bytes_in_total") > 0.0);
    assert!(m("bootstrap_bytes_out_total") > 0.0);
}

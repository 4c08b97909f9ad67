//! Liveness (pings, idle and registration timeouts) and graceful shutdown.

use std::time::Duration;

use bootstrap_server::Config;
use mesh_e2e::{Client, Received, TestServer};
use mesh_proto::{ErrorCode, Frame};

fn fast_liveness() -> Config {
    Config::default()
        .with_ping_interval(Duration::from_millis(50))
        .with_idle_timeout(Duration::from_millis(300))
        .with_register_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_past_many_idle_timeouts() {
    let server = TestServer::start(fast_liveness()).await;
    let (mut a, _) = Client::join(&server.url(), "lobby").await;
    // 20 pings at 50 ms is over three idle timeouts; reading answers each one.
    a.wait_for_pings(20).await;
    let (mut b, peers) = Client::join(&server.url(), "lobby").await;
    assert_eq!(peers, vec![a.id()]);
    b.unicast_to(&mut a, b"still registered").await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(fast_liveness()).await;
    let (mut silent, _) = Client::join(&server.url(), "lobby").await;
    let (mut other, _) = Client::join(&server.url(), "lobby").await;
    let silent_id = silent.id();
    // `silent` does not read, so it answers no ping. Meanwhile `other` keeps reading.
    let start = tokio::time::Instant::now();
    other
        .wait_until_gone(silent_id, "the silent client is dropped")
        .await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "dropped before its idle timeout"
    );
    // Reading now, it finds the connection closed, with the reason if its socket kept it
    // (answering the buffered pings writes to a closed socket, which may reset it first).
    match silent.recv().await {
        Received::Frame(Frame::Error { code, .. }) => assert_eq!(code, ErrorCode::IDLE_TIMEOUT),
        Received::Frame(other) => panic!("unexpected {other:?}"),
        Received::Closed(_) => {}
    }
}

#[tokio::test]
async fn a_connection_that_never_registers_is_closed() {
    let server = TestServer::start(fast_liveness()).await;
    let mut lurker = Client::connect(&server.url()).await;
    assert_eq!(lurker.expect_fatal(ErrorCode::IDLE_TIMEOUT).await, 1001);
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away_and_stops_accepting() {
    let server = TestServer::start(Config::default()).await;
    let url = server.url();
    let addr = server.addr();
    let (mut a, _) = Client::join(&url, "lobby").await;
    let (mut b, _) = Client::join(&url, "other").await;
    let unregistered = Client::connect(&url).await;
    server.stop().await.expect("run returns Ok after shutdown");
    assert_eq!(a.expect_fatal(ErrorCode::SHUTTING_DOWN).await, 1001);
    assert_eq!(b.expect_fatal(ErrorCode::SHUTTING_DOWN).await, 1001);
    let mut unregistered = unregistered;
    assert_eq!(
        unregistered.expect_fatal(ErrorCode::SHUTTING_DOWN).await,
        1001
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

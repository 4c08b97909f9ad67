//! `TestServer` on a real loopback socket: it serves `/healthz` and `/metrics`, stops
//! cleanly and frees its address, and starts again on that address.

use bootstrap_server::Config;
use mesh_testkit::TestServer;

#[tokio::test]
async fn serves_stops_and_starts_again_on_its_address() {
    // On an address no other test binds, so that nobody else is given the port once free.
    let own = "127.0.0.4:0".parse().unwrap();
    let server = TestServer::start_at(own, Config::default()).await;
    let addr = server.addr();
    assert_ne!(addr.port(), 0, "the bound port is reported, not 0");
    assert_eq!(server.url(), format!("ws://{addr}/ws"));
    assert_eq!(
        server.stun_addr(),
        None,
        "no STUN responder unless configured"
    );
    assert_eq!(server.http_get("/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(server.http_get("/nope").await.0, 404);
    assert_eq!(server.metrics().await.count("bootstrap_connections"), 0);
    server.stop().await.expect("a clean stop");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed once stop returns"
    );

    let again = TestServer::start_at(addr, Config::default()).await;
    assert_eq!(again.addr(), addr);
    assert_eq!(again.http_get("/healthz").await.0, 200);
    again.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_configured_stun_responder_is_reported() {
    let config = Config::default().with_stun_listen(Some("127.0.0.1:0".parse().unwrap()));
    let server = TestServer::start(config).await;
    let stun = server.stun_addr().expect("stun_listen was set");
    assert_ne!(stun.port(), 0);
    assert_eq!(
        server.metrics().await.count("bootstrap_stun_answers_total"),
        0
    );
    server.stop().await.expect("a clean stop");
}

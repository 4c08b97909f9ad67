//! `Server::listen` asks the kernel for `Config::listen_backlog` pending connections:
//! while nothing accepts, exactly that many connects complete (Linux queues one more than
//! the backlog), and the next ones wait (their SYN is dropped and retried) instead of
//! completing. `TcpListener::bind` queues 128, so the test asks for more than that.

use std::net::SocketAddr;
use std::time::Duration;

use bootstrap_server::{Config, Server};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A completing loopback connect takes microseconds; this is for a loaded machine.
const CONNECTED_WITHIN: Duration = Duration::from_secs(5);
/// A connect to a full queue does not complete while nothing accepts; its SYN is first
/// retried after 1 s, into a queue that is still full.
const WAITING_FOR: Duration = Duration::from_millis(1500);

fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

#[tokio::test]
async fn the_listener_queues_the_backlog_asked_for_and_no_more() {
    // Above the 128 of TcpListener::bind, within the kernel's cap.
    let backlog = 300.min(somaxconn());
    let config = Config::default().with_listen_backlog(backlog);
    // Bound and listening, but not run: nothing accepts.
    let server = Server::listen(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("listen");
    let addr = server.local_addr().unwrap();

    // One after another, so each is in the accept queue before the next SYN arrives.
    let mut queued = Vec::new();
    for i in 0..backlog {
        let stream = timeout(CONNECTED_WITHIN, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| {
                panic!("connect {i} did not complete: the backlog is below the {backlog} asked for")
            })
            .expect("connect");
        queued.push(stream);
    }
    // Linux takes one more than the backlog; then the queue is full.
    let mut extra = 0;
    for _ in 0..3 {
        if let Ok(stream) = timeout(WAITING_FOR, TcpStream::connect(addr)).await {
            queued.push(stream.expect("connect"));
            extra += 1;
        }
    }
    assert!(
        extra <= 2,
        "all of 3 connects beyond the backlog of {backlog} completed: the queue is longer than asked"
    );
    assert_eq!(queued.len() as u32, backlog + extra);
}

#[tokio::test]
async fn a_backlog_of_zero_is_refused() {
    let err = Server::listen(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Config::default().with_listen_backlog(0),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("listen_backlog must be"), "{err}");
}

#[tokio::test]
async fn an_address_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Server::listen(addr, Config::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot listen on tcp {addr}")),
        "{text}"
    );
}

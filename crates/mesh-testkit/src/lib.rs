//! Test support shared by the workspace's integration tests and benches, written once:
//!
//! - [`TestServer`]: the real bootstrap server on a loopback listener bound to port 0 (so
//!   tests run in parallel without choosing ports), with its WebSocket URL, a plain HTTP GET,
//!   its `/metrics` and a shutdown that waits for `run` to return.
//! - [`Metrics`]: Prometheus/OpenMetrics text parsed into typed samples, looked up by series
//!   (`name` or `name{label="value"}`, labels in any order).
//! - [`TestPki`]: a test CA and a server certificate it signed, as PEM files (for coturn's
//!   TLS port in the TURN-over-TLS tests).
//! - [`turn::Coturn`]: a real TURN server (coturn) on 127.0.0.1, UDP, TCP and TLS.
//! - [`redis_server::Redis`]: a real Redis (`redis-server`) on 127.0.0.1, with a password
//!   and TLS on request, that a test can kill and start again (the bootstrap fleet's tests).
//! - [`wait_until`]: polls a condition until it holds, with a deadline. A test waits for a
//!   condition, never for a fixed sleep; when the deadline passes, the panic names what was
//!   awaited and the last state the condition observed.
//!
//! It is dev-only (`publish = false`): packages use it as a dev-dependency. Every helper
//! panics on failure, with a message that says what failed, as a test wants.
//!
//! ```
//! use mesh_testkit::{DEADLINE, TestServer, wait_until};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = TestServer::start(bootstrap_server::Config::default()).await;
//! assert!(server.url().starts_with("ws://127.0.0.1:"));
//! let rooms = wait_until("the server reports no room", DEADLINE, async || {
//!     let rooms = server.metrics().await.count("bootstrap_rooms");
//!     // Done with the value, or not yet with what was seen (named in the panic).
//!     if rooms == 0 { Ok(rooms) } else { Err(format!("{rooms} rooms")) }
//! })
//! .await;
//! assert_eq!(rooms, 0);
//! server.stop().await.expect("a clean stop");
//! # }
//! ```
#![warn(missing_docs)]

pub mod metrics;
pub mod redis_server;
pub mod server;
pub mod tls;
pub mod turn;
pub mod wait;

use std::time::Duration;

pub use metrics::Metrics;
pub use server::TestServer;
pub use tls::TestPki;
pub use wait::{Outcome, wait_until};

/// How long a single wait of a test may take by default: long enough for a loaded machine
/// (tests share their cores with other builds), short enough to fail a hung test quickly.
pub const DEADLINE: Duration = Duration::from_secs(20);

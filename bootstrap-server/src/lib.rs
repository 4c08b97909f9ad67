//! The bootstrap server: the minimal WebSocket door into the mesh overlay.
//!
//! A new node connects to `/ws`, proves its identity (a signed challenge), joins a room and
//! receives a random sample of the room's peers. It can then send `Unicast` frames (delivered
//! as `Transfer`) and `Broadcast` frames (delivered as `TransferBroadcast`) to carry its first
//! WebRTC signaling. The server never parses payloads. After the first link, nodes signal
//! through the mesh itself; the server is only the door.
//!
//! Everything is bounded: connections (a semaphore), frame and payload sizes, frames per
//! second per connection, peers per room, and every outgoing queue. `/healthz` answers `ok`;
//! `/metrics` serves Prometheus text.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bootstrap_server::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?; // nodes connect to ws://{addr}/ws
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let config = bootstrap_server::Config::default().with_welcome_sample(4);
//! let server = tokio::spawn(bootstrap_server::run(listener, config, async {
//!     let _ = stopped.await;
//! }));
//! // ... nodes join through ws://{addr}/ws ...
//! stop.send(()).unwrap();
//! server.await.unwrap()?; // returns once every session has been closed
//! # Ok(())
//! # }
//! ```
//!
//! The wire protocol is specified in `docs/protocol.md`.
#![warn(missing_docs)]

mod config;
mod metrics;
mod registry;
mod session;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use mesh_proto::ErrorCode;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// Everything that can go wrong running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent; the message says which setting to change.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The listener failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every connection of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    config: Config,
    registry: registry::Registry,
    metrics: metrics::Metrics,
    connections: Arc<Semaphore>,
    /// Cancelled when the server shuts down; every session holds a child token.
    shutdown: CancellationToken,
    /// Tracks WebSocket sessions, which outlive the HTTP connection that upgraded them.
    sessions: TaskTracker,
    next_session: AtomicU64,
}

/// Serves the bootstrap protocol on `listener` until `shutdown` completes.
///
/// On shutdown the server stops accepting, sends every session an `Error` frame with
/// `SHUTTING_DOWN` and a WebSocket close (1001, going away), and waits up to
/// [`Config::shutdown_grace`] for sessions to end.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let grace = config.shutdown_grace;
    let shared = Arc::new(Shared {
        registry: registry::Registry::new(config.max_peers_per_room),
        metrics: metrics::Metrics::new(),
        connections: Arc::new(Semaphore::new(config.max_connections)),
        shutdown: CancellationToken::new(),
        sessions: TaskTracker::new(),
        next_session: AtomicU64::new(1),
        config,
    });
    let app = Router::new()
        .route("/ws", get(ws_handler))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_handler))
        .with_state(shared.clone());
    let token = shared.shutdown.clone();
    let stop = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, closing sessions");
        token.cancel();
    };
    // Frames are small and latency-bound: disable Nagle, or back-to-back frames wait for the
    // peer's delayed ACK (~40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    shared.sessions.close();
    if tokio::time::timeout(grace, shared.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = shared.sessions.len(),
            "sessions still open after the grace period"
        );
    }
    Ok(())
}

/// Per-connection WebSocket read buffer, in bytes.
const READ_BUFFER: usize = 8 * 1024;

async fn ws_handler(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    // Leave room above the limit so an oversized frame gets a FRAME_TOO_LARGE error frame
    // rather than a bare transport error; anything beyond that is cut by the WebSocket layer.
    let hard_limit = shared.config.max_frame_size * 2;
    let permit = shared.connections.clone().try_acquire_owned().ok();
    let tracked = shared.sessions.token();
    ws.max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        // tungstenite's default 128 KiB read buffer is zero-filled before reads and held per
        // connection; frames here are at most max_frame_size.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let _tracked = tracked;
            if shared.shutdown.is_cancelled() {
                let why = "the server is shutting down";
                session::refuse(socket, shared, ErrorCode::SHUTTING_DOWN, why).await;
            } else if let Some(permit) = permit {
                session::run(socket, shared, permit).await;
            } else {
                let why = "the server is at its connection limit; try again later";
                session::refuse(socket, shared, ErrorCode::SERVER_FULL, why).await;
            }
        })
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> Response {
    let (rooms, peers) = shared.registry.counts();
    shared.metrics.rooms.set(rooms as i64);
    shared.metrics.peers.set(peers as i64);
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

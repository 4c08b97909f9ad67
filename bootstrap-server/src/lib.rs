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
//! With [`Config::web_page`] on (the default), `/` serves a browser page embedded in the
//! binary, with the browser bundle if it was built before the server (see [`web`]).
//!
//! With [`Config::stun_listen`] set, the server also answers STUN Binding requests on that
//! UDP address (see [`stun`]), so nodes behind a NAT learn their server-reflexive address
//! from the door they already know. [`Server::bind`] binds it and reports the bound
//! address ([`Server::stun_addr`]) before the server runs; every `Welcome` announces its
//! port (`stun_port`), which nodes use on the server's host name.
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

mod accept;
mod config;
mod metrics;
mod registry;
mod session;
pub mod stun;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
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
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Config, RedisUrl};

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
    /// [`Server::listen`] could not listen on the address asked for.
    #[error("cannot listen on tcp {addr}: {source}; pick a free port or a local address")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding or listening failed.
        source: std::io::Error,
    },
    /// The STUN responder's UDP socket could not be bound to [`Config::stun_listen`].
    #[error(
        "cannot bind the STUN responder to udp {addr}: {source}; pick a free port or a local address"
    )]
    StunBind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// State shared by every connection of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    config: Config,
    registry: registry::Registry,
    metrics: Arc<metrics::Metrics>,
    connections: Arc<Semaphore>,
    /// The bound UDP port of the STUN responder, announced in every `Welcome`.
    stun_port: Option<u16>,
    /// Cancelled when the server shuts down; every session holds a child token.
    shutdown: CancellationToken,
    /// Tracks WebSocket sessions, which outlive the HTTP connection that upgraded them.
    sessions: TaskTracker,
    next_session: AtomicU64,
}

/// Serves the bootstrap protocol on `listener` until `shutdown` completes: the same as
/// [`Server::bind`] then [`Server::run`].
///
/// On shutdown the server stops accepting, sends every session an `Error` frame with
/// `SHUTTING_DOWN` and a WebSocket close (1001, going away), and waits up to
/// [`Config::shutdown_grace`] for sessions to end.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    Server::bind(listener, config).await?.run(shutdown).await
}

/// A server whose sockets are bound but which does not serve yet: the place to learn the
/// addresses the kernel picked for port 0.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bootstrap_server::Error> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let config = bootstrap_server::Config::default()
///     .with_stun_listen(Some("127.0.0.1:0".parse().unwrap()));
/// let server = bootstrap_server::Server::bind(listener, config).await?;
/// let stun = server.stun_addr().unwrap(); // ICE servers: stun:{stun}
/// assert_ne!(stun.port(), 0);
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let task = tokio::spawn(server.run(async { let _ = stopped.await; }));
/// stop.send(()).unwrap();
/// task.await.unwrap()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    stun: Option<(UdpSocket, SocketAddr)>,
    config: Config,
}

impl Server {
    /// Listens on `addr` (TCP) with a backlog of [`Config::listen_backlog`], then does what
    /// [`Server::bind`] does. The way to start a server that queues a burst of connects: a
    /// listener from `TcpListener::bind` queues 128.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bootstrap_server::Error> {
    /// let config = bootstrap_server::Config::default().with_listen_backlog(4096);
    /// let server = bootstrap_server::Server::listen("127.0.0.1:0".parse().unwrap(), config).await?;
    /// let addr = server.local_addr()?; // nodes connect to ws://{addr}/ws
    /// assert_ne!(addr.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn listen(addr: SocketAddr, config: Config) -> Result<Self, Error> {
        config.validate()?;
        let backlog = config.listen_backlog;
        let listener =
            listen_tcp(addr, backlog).map_err(|source| Error::Listen { addr, source })?;
        if let Some(max) = somaxconn().filter(|&max| max < backlog) {
            tracing::warn!(
                backlog,
                somaxconn = max,
                "the kernel caps the listen backlog at net.core.somaxconn = {max}, below \
                 listen_backlog = {backlog}: raise it (sysctl net.core.somaxconn={backlog})"
            );
        }
        Self::bind(listener, config).await
    }

    /// Checks `config` and binds the STUN responder's UDP socket if
    /// [`Config::stun_listen`] asks for one; `listener` is already bound.
    pub async fn bind(listener: TcpListener, config: Config) -> Result<Self, Error> {
        config.validate()?;
        let stun = match config.stun_listen {
            None => None,
            Some(addr) => {
                let bind_error = |source| Error::StunBind { addr, source };
                let socket = UdpSocket::bind(addr).await.map_err(bind_error)?;
                let bound = socket.local_addr().map_err(bind_error)?;
                Some((socket, bound))
            }
        };
        Ok(Self {
            listener,
            stun,
            config,
        })
    }

    /// The address WebSocket clients connect to (`ws://{addr}/ws`).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.listener.local_addr()?)
    }

    /// The bound address of the STUN responder (`stun:{addr}`), if [`Config::stun_listen`]
    /// was set; with port 0 this is the port the kernel picked.
    pub fn stun_addr(&self) -> Option<SocketAddr> {
        self.stun.as_ref().map(|(_, addr)| *addr)
    }

    /// Serves until `shutdown` completes; see [`run`].
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Self {
            listener,
            stun,
            config,
        } = self;
        serve(listener, stun, config, shutdown).await
    }
}

/// A TCP listener on `addr` with `backlog` pending connections. Like `TcpListener::bind`,
/// with `SO_REUSEADDR` on Unix, so a restarted server gets its port back while the old
/// connections are in `TIME_WAIT`.
fn listen_tcp(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The kernel's cap on listen backlogs (`net.core.somaxconn`), where it can be read.
fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn serve(
    listener: TcpListener,
    stun: Option<(UdpSocket, SocketAddr)>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let grace = config.shutdown_grace;
    let metrics = Arc::new(metrics::Metrics::new(config.redis.is_some()));
    let local = registry::Local::new(config.max_peers_per_room);
    let registry = if config.redis.is_some() {
        let about = listener
            .local_addr()
            .map(|addr| format!("ws://{addr}/ws"))
            .unwrap_or_default();
        registry::Registry::Fleet(registry::Fleet::start(
            &config,
            metrics.clone(),
            about,
            local,
        )?)
    } else {
        registry::Registry::Local(local)
    };
    let shared = Arc::new(Shared {
        registry,
        metrics,
        connections: Arc::new(Semaphore::new(config.max_connections)),
        stun_port: stun.as_ref().map(|(_, addr)| addr.port()),
        shutdown: CancellationToken::new(),
        sessions: TaskTracker::new(),
        next_session: AtomicU64::new(1),
        config,
    });
    let mut app = Router::new()
        .route("/ws", get(ws_handler))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_handler));
    if shared.config.web_page {
        app = app.merge(web::routes());
    }
    let app = app.with_state(shared.clone());
    // The responder stops with the server, and also if serving HTTP fails (the guard).
    let stun_stop = shared.shutdown.child_token();
    let _stun_guard = stun_stop.clone().drop_guard();
    let stun_task = stun
        .map(|(socket, _)| tokio::spawn(stun::serve(socket, shared.clone(), stun_stop.clone())));
    let token = shared.shutdown.clone();
    let stop = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, closing sessions");
        token.cancel();
    };
    // Frames are small and latency-bound: disable Nagle, or back-to-back frames wait for the
    // peer's delayed ACK (~40 ms on Linux).
    let listener = accept::Acceptor::new(listener, shared.clone()).tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    stun_stop.cancel();
    if let Some(task) = stun_task {
        // It stops at its next await; waiting frees the UDP port before `run` returns.
        let _ = task.await;
    }
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
    shared.registry.close().await;
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

/// `ok`; `degraded: …` (still 200: the server serves, as a single server, and a load
/// balancer must not take a whole fleet out when Redis goes); 503 `shutting down`.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if let Some(why) = shared.registry.degraded() {
        format!("degraded: {why}\n").into_response()
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

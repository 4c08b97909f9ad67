//! `bootstrap-server`: the WebSocket door into the mesh overlay. See `--help`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bootstrap_server::Config;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The bootstrap server of the peer-relayed WebRTC mesh overlay.
///
/// New nodes connect to ws://ADDR/ws, prove their identity, join a room and get a random
/// sample of its peers; the server relays their first signaling (unicast → transfer,
/// broadcast → transfer-broadcast) and nothing else. `/healthz` and `/metrics` (Prometheus)
/// are served on the same address, and at `/` a browser page embedded in the binary (unless
/// --no-web-page). With --stun-listen it also answers STUN Binding requests over UDP, so
/// nodes behind a NAT learn their public address. With --redis it is one server of a fleet:
/// every server on the same Redis serves the same rooms, and nodes given several servers'
/// URLs move to another when one fails. Logs go to stderr; set RUST_LOG (e.g. `debug`) for
/// more.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Address to listen on. Port 0 picks a free port; the bound address is logged.
    #[arg(long, env = "BOOTSTRAP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Connections the kernel queues before the server accepts them (the listen backlog): a
    /// burst of connects beyond it, such as a reconnect storm after a restart, is dropped
    /// and retried by the clients a second later. The kernel caps it at
    /// net.core.somaxconn (Linux); the server warns when it does.
    #[arg(long, env = "BOOTSTRAP_LISTEN_BACKLOG", default_value_t = Config::default().listen_backlog)]
    listen_backlog: u32,
    /// Most simultaneous WebSocket connections.
    #[arg(long, env = "BOOTSTRAP_MAX_CONNECTIONS", default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// Largest frame accepted, in bytes (at most 65536).
    #[arg(long, env = "BOOTSTRAP_MAX_FRAME_SIZE", default_value_t = Config::default().max_frame_size)]
    max_frame_size: usize,
    /// Largest unicast/broadcast payload, in bytes.
    #[arg(long, env = "BOOTSTRAP_MAX_PAYLOAD_SIZE", default_value_t = Config::default().max_payload_size)]
    max_payload_size: usize,
    /// Sustained frames per second allowed per connection.
    #[arg(long, env = "BOOTSTRAP_FRAMES_PER_SECOND", default_value_t = Config::default().frames_per_second)]
    frames_per_second: u32,
    /// Frames one connection may send at once: a token bucket of this many, refilled at
    /// --frames-per-second (the burst includes the rate, it does not come on top of it).
    #[arg(long, env = "BOOTSTRAP_FRAME_BURST", default_value_t = Config::default().frame_burst)]
    frame_burst: u32,
    /// Most peers registered in one room.
    #[arg(long, env = "BOOTSTRAP_MAX_PEERS_PER_ROOM", default_value_t = Config::default().max_peers_per_room)]
    max_peers_per_room: usize,
    /// How many peers a newcomer's Welcome lists.
    #[arg(long, env = "BOOTSTRAP_WELCOME_SAMPLE", default_value_t = Config::default().welcome_sample)]
    welcome_sample: usize,
    /// Most peers one GetPeers answer lists.
    #[arg(long, env = "BOOTSTRAP_MAX_SAMPLE", default_value_t = Config::default().max_sample)]
    max_sample: usize,
    /// Frames queued towards one connection before further frames to it are dropped.
    #[arg(long, env = "BOOTSTRAP_OUTBOUND_QUEUE", default_value_t = Config::default().outbound_queue)]
    outbound_queue: usize,
    /// Seconds between WebSocket pings.
    #[arg(long, env = "BOOTSTRAP_PING_INTERVAL", default_value_t = Config::default().ping_interval.as_secs_f64())]
    ping_interval: f64,
    /// Seconds of silence (not even a pong) after which a connection is closed.
    #[arg(long, env = "BOOTSTRAP_IDLE_TIMEOUT", default_value_t = Config::default().idle_timeout.as_secs_f64())]
    idle_timeout: f64,
    /// Seconds a new connection has to register.
    #[arg(long, env = "BOOTSTRAP_REGISTER_TIMEOUT", default_value_t = Config::default().register_timeout.as_secs_f64())]
    register_timeout: f64,
    /// Seconds to wait for sessions to close on shutdown.
    #[arg(long, env = "BOOTSTRAP_SHUTDOWN_GRACE", default_value_t = Config::default().shutdown_grace.as_secs_f64())]
    shutdown_grace: f64,
    /// UDP address of the STUN binding responder, e.g. 0.0.0.0:3478: nodes learn their public
    /// (server-reflexive) address from it. Its port is announced in every Welcome, and nodes
    /// with no STUN server of their own use stun:<host of their bootstrap URL>:<port>, so it
    /// must be reachable on the same host name as the WebSocket. Port 0 picks a free port;
    /// the bound address is logged. Default: no STUN responder.
    #[arg(long, env = "BOOTSTRAP_STUN_LISTEN")]
    stun_listen: Option<SocketAddr>,
    /// Sustained STUN answers per second, all sources together (caps use as a reflector).
    #[arg(long, env = "BOOTSTRAP_STUN_ANSWERS_PER_SECOND", default_value_t = Config::default().stun_answers_per_second)]
    stun_answers_per_second: u32,
    /// STUN answers at once, all sources together: a token bucket of this many, refilled at
    /// --stun-answers-per-second.
    #[arg(long, env = "BOOTSTRAP_STUN_ANSWER_BURST", default_value_t = Config::default().stun_answer_burst)]
    stun_answer_burst: u32,
    /// Sustained STUN answers per second to one source (an IPv4 address or an IPv6 /64).
    #[arg(long, env = "BOOTSTRAP_STUN_ANSWERS_PER_SOURCE", default_value_t = Config::default().stun_answers_per_source)]
    stun_answers_per_source: u32,
    /// STUN answers at once to one source: a token bucket of this many, refilled at
    /// --stun-answers-per-source.
    #[arg(long, env = "BOOTSTRAP_STUN_SOURCE_BURST", default_value_t = Config::default().stun_source_burst)]
    stun_source_burst: u32,
    /// The id puzzle a node must meet to register (S/Kademlia's static puzzle): this many
    /// leading zero bits of SHA-256 of its node id, at most 24. Each bit doubles the keys a
    /// node makes to find such an id (2^N on average); an id below it is refused with
    /// ID_BELOW_DIFFICULTY. Announced in the Challenge. 0: off.
    #[arg(long, env = "BOOTSTRAP_ID_DIFFICULTY", default_value_t = Config::default().id_difficulty)]
    id_difficulty: u32,
    /// Do not serve the browser page: without this flag, / serves a page that runs a mesh
    /// node in the browser (/app.js, and the wasm bundle at /pkg/), embedded in this binary
    /// when it was built (the bundle only if scripts/build-web.sh ran first; the log says
    /// whether it did). With it, those paths answer 404; /ws, /healthz and /metrics are
    /// unchanged.
    #[arg(long, env = "BOOTSTRAP_NO_WEB_PAGE", value_parser = clap::builder::BoolishValueParser::new())]
    no_web_page: bool,
    /// Join a fleet: share rooms with every bootstrap server given the same Redis (or
    /// Valkey) URL and --fleet-prefix, so a node registered at one is introduced to, and
    /// reached from, nodes at the others. redis://[[user]:password@]host[:port][/db], or
    /// rediss://... for TLS. Prefer the environment variable for a URL with a password (the
    /// command line is visible to other users); logs show it with the password as ***.
    /// While Redis is unreachable, the server serves its own registrations alone and
    /// /healthz says degraded. Default: no fleet, no external service.
    #[arg(long, env = "BOOTSTRAP_REDIS")]
    // Parsed after clap, whose errors would echo the value (and its password).
    redis: Option<String>,
    /// A PEM file of the certificate authorities a rediss:// server's certificate is checked
    /// against, instead of the system's.
    #[arg(long, env = "BOOTSTRAP_REDIS_CA", requires = "redis")]
    redis_ca: Option<std::path::PathBuf>,
    /// The fleet's name: every Redis key and channel it uses starts with it, so several
    /// fleets can share one Redis.
    #[arg(long, env = "BOOTSTRAP_FLEET_PREFIX", default_value_t = Config::default().fleet_prefix, requires = "redis")]
    fleet_prefix: String,
    /// Seconds a server's lease in Redis lasts (renewed every third of it): the nodes of a
    /// server that died leave every sample within it.
    #[arg(long, env = "BOOTSTRAP_FLEET_LEASE", default_value_t = Config::default().fleet_lease.as_secs_f64(), requires = "redis")]
    fleet_lease: f64,
    /// Seconds a session waits for Redis (its Welcome's sample, GetPeers) before it is
    /// answered from this server's own registrations.
    #[arg(long, env = "BOOTSTRAP_FLEET_TIMEOUT", default_value_t = Config::default().fleet_timeout.as_secs_f64(), requires = "redis")]
    fleet_timeout: f64,
    /// Frames and updates queued towards Redis before further ones are refused.
    #[arg(long, env = "BOOTSTRAP_FLEET_QUEUE", default_value_t = Config::default().fleet_queue, requires = "redis")]
    fleet_queue: usize,
}

/// Descriptors the process holds besides its connections (stdio, the listener, the runtime's,
/// the STUN socket, the accept loop's spare: 14 in all), with room to spare.
const FD_MARGIN: u64 = 32;

/// Raises the soft open-files limit (RLIMIT_NOFILE) to the hard limit, logs it, and warns
/// when `max_connections` does not fit under it: connections beyond the limit are closed at
/// accept, unserved, instead of being refused with SERVER_FULL.
fn raise_open_files_limit(max_connections: usize) {
    let before = rlimit::Resource::NOFILE.get().map(|(soft, _)| soft);
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!("cannot read or raise the open files limit (RLIMIT_NOFILE): {e}");
            return;
        }
    };
    match before {
        Ok(soft) if soft < limit => {
            tracing::info!(limit, "open files limit: {limit} (raised from {soft})");
        }
        _ => tracing::info!(limit, "open files limit: {limit}"),
    }
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(FD_MARGIN);
    if needed > limit {
        let fit = limit.saturating_sub(FD_MARGIN);
        tracing::warn!(
            limit,
            max_connections,
            "--max-connections {max_connections} does not fit under the open files limit \
             {limit}: beyond about {fit} connections, new ones are closed as soon as accepted \
             instead of refused with SERVER_FULL; set --max-connections {fit} or less, or raise \
             the hard limit (ulimit -Hn, LimitNOFILE= in systemd)"
        );
    }
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} must be a non-negative number of seconds, got {value}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let config = Config::default()
        .with_listen_backlog(args.listen_backlog)
        .with_max_connections(args.max_connections)
        .with_max_frame_size(args.max_frame_size)
        .with_max_payload_size(args.max_payload_size)
        .with_frames_per_second(args.frames_per_second)
        .with_frame_burst(args.frame_burst)
        .with_max_peers_per_room(args.max_peers_per_room)
        .with_welcome_sample(args.welcome_sample)
        .with_max_sample(args.max_sample)
        .with_outbound_queue(args.outbound_queue)
        .with_ping_interval(seconds("ping-interval", args.ping_interval)?)
        .with_idle_timeout(seconds("idle-timeout", args.idle_timeout)?)
        .with_register_timeout(seconds("register-timeout", args.register_timeout)?)
        .with_shutdown_grace(seconds("shutdown-grace", args.shutdown_grace)?)
        .with_stun_listen(args.stun_listen)
        .with_stun_answers_per_second(args.stun_answers_per_second)
        .with_stun_answer_burst(args.stun_answer_burst)
        .with_stun_answers_per_source(args.stun_answers_per_source)
        .with_stun_source_burst(args.stun_source_burst)
        .with_id_difficulty(args.id_difficulty)
        .with_web_page(!args.no_web_page)
        .with_redis(args.redis.as_deref().map(str::parse).transpose()?)
        .with_redis_ca(args.redis_ca)
        .with_fleet_prefix(args.fleet_prefix)
        .with_fleet_lease(seconds("fleet-lease", args.fleet_lease)?)
        .with_fleet_timeout(seconds("fleet-timeout", args.fleet_timeout)?)
        .with_fleet_queue(args.fleet_queue);
    config.validate()?;
    raise_open_files_limit(config.max_connections);
    let shutdown = shutdown_signal();

    let backlog = config.listen_backlog;
    let web_page = config.web_page;
    let server = bootstrap_server::Server::listen(args.listen, config).await?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, backlog, "listening: ws://{addr}/ws, http://{addr}/healthz, http://{addr}/metrics");
    let bundle = bootstrap_server::web::BUNDLE_EMBEDDED;
    match (web_page, bundle) {
        (false, _) => tracing::info!(web_page, bundle, "browser page: off (--no-web-page)"),
        (true, true) => tracing::info!(
            web_page,
            bundle,
            "browser page: http://{addr}/ (with the browser bundle)"
        ),
        (true, false) => tracing::info!(
            web_page,
            bundle,
            "browser page: http://{addr}/, without the browser bundle: it was not built \
             into this binary (run scripts/build-web.sh, then rebuild the server)"
        ),
    }
    if let Some(stun) = server.stun_addr() {
        tracing::info!(%stun, "STUN binding responder: stun:{stun} (UDP)");
    }
    server.run(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal that comes while the server is starting (after the
/// log has said where it listens) still stops it gracefully, instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let [interrupt, terminate] =
            [SignalKind::interrupt(), SignalKind::terminate()].map(|kind| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(e) => {
                    tracing::warn!("cannot listen for signal {}: {e}", kind.as_raw_value());
                    None
                }
            });
        let received = |signal: Option<Signal>| async move {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        async move {
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

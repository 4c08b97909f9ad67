//! Server configuration: every limit, with documented defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use mesh_proto::{Limits, MAX_FRAME_SIZE};

/// Configuration of a bootstrap server. Every limit has a default suitable for a
/// public door; set them with the `with_*` builders.
#[derive(Clone, Debug)]
pub struct Config {
    /// How many connections the kernel queues for [`crate::Server::listen`]'s listener
    /// before the server accepts them (the `listen(2)` backlog). A burst of connects beyond
    /// it (a reconnect storm after a restart) is dropped by the kernel and retried by the
    /// clients a second later. The kernel caps it at `net.core.somaxconn` (Linux); the
    /// server warns when it does. Default 1 024 (`TcpListener::bind`'s own is 128).
    pub listen_backlog: u32,
    /// Most simultaneous WebSocket connections (registered or not). Default 10 000. Each
    /// holds a file descriptor: keep it below the process's open-files limit, so that the
    /// excess is refused with `SERVER_FULL` rather than closed at accept.
    pub max_connections: usize,
    /// Largest encoded frame accepted, in bytes, at most [`MAX_FRAME_SIZE`]. Default 16 KiB.
    pub max_frame_size: usize,
    /// Largest unicast/broadcast payload, in bytes. Default 12 KiB.
    pub max_payload_size: usize,
    /// Sustained frames per second per connection. Default 50.
    pub frames_per_second: u32,
    /// Frames one connection may send at once: the size of a token bucket that refills at
    /// [`Config::frames_per_second`] (the burst includes the rate, it does not come on top
    /// of it). Default 100.
    pub frame_burst: u32,
    /// Most peers registered in one room. Default 10 000.
    pub max_peers_per_room: usize,
    /// How many peers a `Welcome` samples. Default 8.
    pub welcome_sample: usize,
    /// The most peers one `Peers` answer holds, whatever `GetPeers` asked. Default 64.
    pub max_sample: usize,
    /// Frames queued towards one connection before further frames to it are dropped
    /// (with `TARGET_BUSY` to the sender). Default 256.
    pub outbound_queue: usize,
    /// Interval between WebSocket pings. Default 15 s.
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed. Default 45 s.
    pub idle_timeout: Duration,
    /// A connection must register within this time. Default 10 s.
    pub register_timeout: Duration,
    /// On shutdown, how long to wait for sessions to close before returning. Default 5 s.
    pub shutdown_grace: Duration,
    /// Where the STUN binding responder listens (UDP), e.g. `0.0.0.0:3478`; port 0 picks a
    /// free port, see [`crate::Server::stun_addr`]. Its port is announced in every `Welcome`
    /// (`stun_port`). Default `None`: no STUN responder.
    pub stun_listen: Option<SocketAddr>,
    /// Sustained STUN answers per second, all sources together: the most the responder can
    /// be made to reflect. Default 1 000.
    pub stun_answers_per_second: u32,
    /// STUN answers at once, all sources together: the size of a token bucket that refills
    /// at [`Config::stun_answers_per_second`]. Default 1 000.
    pub stun_answer_burst: u32,
    /// Sustained STUN answers per second to one source (an IPv4 address or an IPv6 /64;
    /// sources share [`crate::stun::SOURCE_BUCKETS`] buckets by hash). Default 20.
    pub stun_answers_per_source: u32,
    /// STUN answers at once to one source: the size of a token bucket that refills at
    /// [`Config::stun_answers_per_source`]. Default 50.
    pub stun_source_burst: u32,
    /// The id puzzle a `Register` must meet (docs/protocol.md §4.7): this many leading zero
    /// bits of SHA-256 of the node id, at most [`mesh_proto::puzzle::MAX_DIFFICULTY`]. An
    /// id below it is refused with `ID_BELOW_DIFFICULTY`; it is announced in the
    /// `Challenge` (`limits.id_difficulty`). A node makes 2^d keys on average to find one.
    /// Default 0: off.
    pub id_difficulty: u32,
    /// Whether the browser page is served at `/` (with `/app.js` and the browser bundle at
    /// `/pkg/…`, all embedded in the binary; see [`crate::web`]). Off, those paths answer
    /// 404; `/ws`, `/healthz` and `/metrics` are the same either way. Default `true`.
    pub web_page: bool,
    /// The Redis (or Valkey) through which this server shares its rooms with the other
    /// servers of its fleet: every server given the same URL and [`Config::fleet_prefix`]
    /// serves the same rooms (docs/architecture.md, "The fleet"). Default `None`: one server,
    /// everything in this process, no external service.
    pub redis: Option<RedisUrl>,
    /// A PEM file of the certificate authorities that a `rediss://` Redis's certificate is
    /// checked against, instead of the system's. Default `None`: the system's store.
    pub redis_ca: Option<PathBuf>,
    /// The name of the fleet: every key and channel it uses in Redis starts with it and a
    /// colon, so several fleets (or other users) can share one Redis. 1 to 64 bytes, no
    /// whitespace or control character. Default `mesh-fleet`.
    pub fleet_prefix: String,
    /// How long a fleet server's lease lasts in Redis: it renews it every third of this,
    /// and the nodes of a server that stopped renewing (killed, cut off from Redis) leave
    /// every sample within it. Registrations themselves are kept ten times as long
    /// ([`Config::fleet_registration_ttl`]), renewed as often. Default 6 s.
    pub fleet_lease: Duration,
    /// The longest a fleet server waits for Redis on behalf of a session (a registration's
    /// sample, a `GetPeers`): past it, the session is answered from this server's own rooms
    /// and the server counts Redis as unreachable. Default 1 s.
    pub fleet_timeout: Duration,
    /// Frames and updates queued towards Redis (unicasts and broadcasts to other servers,
    /// unregistrations) before further ones are refused (`TARGET_BUSY`) or dropped. Default
    /// 4 096.
    pub fleet_queue: usize,
}

/// The URL of a Redis (or Valkey) server: `redis://[[user]:password@]host[:port][/db]`, or
/// `rediss://…` for TLS. Shown (`Display`, `Debug`, logs) with its password replaced by
/// `***`; [`RedisUrl::expose`] gives the URL itself, to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: String,
    redacted: String,
}

impl RedisUrl {
    /// The URL with its password, to connect with. Never log it.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }
}

impl FromStr for RedisUrl {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str, shown: &str| {
            Err(crate::Error::InvalidConfig(format!(
                "invalid Redis URL {shown}: {why} (expected redis://[[user]:password@]host[:port][/db] or rediss://...)"
            )))
        };
        let Ok(mut parsed) = url::Url::parse(s) else {
            // Do not echo what may hold a password.
            return bad("it does not parse as a URL", "(not shown)");
        };
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        let redacted = parsed.to_string();
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return bad("the scheme must be redis or rediss", &redacted);
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return bad("it names no host", &redacted);
        }
        if let Err(e) = redis::Client::open(s) {
            return bad(&e.to_string(), &redacted);
        }
        Ok(Self {
            url: s.to_owned(),
            redacted,
        })
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_backlog: 1024,
            max_connections: 10_000,
            max_frame_size: 16 * 1024,
            max_payload_size: 12 * 1024,
            frames_per_second: 50,
            frame_burst: 100,
            max_peers_per_room: 10_000,
            welcome_sample: 8,
            max_sample: 64,
            outbound_queue: 256,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            register_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            stun_listen: None,
            stun_answers_per_second: 1_000,
            stun_answer_burst: 1_000,
            stun_answers_per_source: 20,
            stun_source_burst: 50,
            id_difficulty: 0,
            web_page: true,
            redis: None,
            redis_ca: None,
            fleet_prefix: "mesh-fleet".to_owned(),
            fleet_lease: Duration::from_secs(6),
            fleet_timeout: Duration::from_secs(1),
            fleet_queue: 4096,
        }
    }
}

macro_rules! builders {
    ($($(#[$doc:meta])* $fn:ident => $field:ident: $ty:ty;)*) => {
        impl Config {
            $( $(#[$doc])* pub fn $fn(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            } )*
        }
    };
}

builders! {
    /// Sets [`Config::listen_backlog`].
    with_listen_backlog => listen_backlog: u32;
    /// Sets [`Config::max_connections`].
    with_max_connections => max_connections: usize;
    /// Sets [`Config::max_frame_size`] (capped at [`MAX_FRAME_SIZE`] by [`Config::validate`]).
    with_max_frame_size => max_frame_size: usize;
    /// Sets [`Config::max_payload_size`].
    with_max_payload_size => max_payload_size: usize;
    /// Sets [`Config::frames_per_second`].
    with_frames_per_second => frames_per_second: u32;
    /// Sets [`Config::frame_burst`].
    with_frame_burst => frame_burst: u32;
    /// Sets [`Config::max_peers_per_room`].
    with_max_peers_per_room => max_peers_per_room: usize;
    /// Sets [`Config::welcome_sample`].
    with_welcome_sample => welcome_sample: usize;
    /// Sets [`Config::max_sample`].
    with_max_sample => max_sample: usize;
    /// Sets [`Config::outbound_queue`].
    with_outbound_queue => outbound_queue: usize;
    /// Sets [`Config::ping_interval`].
    with_ping_interval => ping_interval: Duration;
    /// Sets [`Config::idle_timeout`].
    with_idle_timeout => idle_timeout: Duration;
    /// Sets [`Config::register_timeout`].
    with_register_timeout => register_timeout: Duration;
    /// Sets [`Config::shutdown_grace`].
    with_shutdown_grace => shutdown_grace: Duration;
    /// Sets [`Config::stun_listen`].
    with_stun_listen => stun_listen: Option<SocketAddr>;
    /// Sets [`Config::stun_answers_per_second`].
    with_stun_answers_per_second => stun_answers_per_second: u32;
    /// Sets [`Config::stun_answer_burst`].
    with_stun_answer_burst => stun_answer_burst: u32;
    /// Sets [`Config::stun_answers_per_source`].
    with_stun_answers_per_source => stun_answers_per_source: u32;
    /// Sets [`Config::stun_source_burst`].
    with_stun_source_burst => stun_source_burst: u32;
    /// Sets [`Config::id_difficulty`].
    with_id_difficulty => id_difficulty: u32;
    /// Sets [`Config::web_page`].
    with_web_page => web_page: bool;
    /// Sets [`Config::redis`].
    with_redis => redis: Option<RedisUrl>;
    /// Sets [`Config::redis_ca`].
    with_redis_ca => redis_ca: Option<PathBuf>;
    /// Sets [`Config::fleet_prefix`].
    with_fleet_prefix => fleet_prefix: String;
    /// Sets [`Config::fleet_lease`].
    with_fleet_lease => fleet_lease: Duration;
    /// Sets [`Config::fleet_timeout`].
    with_fleet_timeout => fleet_timeout: Duration;
    /// Sets [`Config::fleet_queue`].
    with_fleet_queue => fleet_queue: usize;
}

impl Config {
    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |what: &str| Err(crate::Error::InvalidConfig(what.to_owned()));
        if self.listen_backlog == 0 || self.listen_backlog > i32::MAX as u32 {
            return bad(&format!("listen_backlog must be within 1..={}", i32::MAX));
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_frame_size < 64 || self.max_frame_size > MAX_FRAME_SIZE {
            return bad(&format!(
                "max_frame_size must be within 64..={MAX_FRAME_SIZE}"
            ));
        }
        if self.max_payload_size == 0 || self.max_payload_size + 32 > self.max_frame_size {
            return bad("max_payload_size must be at least 1 and 32 bytes below max_frame_size");
        }
        if self.frames_per_second == 0 || self.frame_burst == 0 {
            return bad("frames_per_second and frame_burst must be at least 1");
        }
        if self.max_peers_per_room == 0 || self.outbound_queue == 0 {
            return bad("max_peers_per_room and outbound_queue must be at least 1");
        }
        if self.max_sample == 0 || self.max_sample > u16::MAX as usize {
            return bad("max_sample must be within 1..=65535");
        }
        if self.ping_interval.is_zero() || self.idle_timeout <= self.ping_interval {
            return bad("idle_timeout must be longer than ping_interval, and both non-zero");
        }
        if self.register_timeout.is_zero() {
            return bad("register_timeout must be non-zero");
        }
        if [
            self.stun_answers_per_second,
            self.stun_answer_burst,
            self.stun_answers_per_source,
            self.stun_source_burst,
        ]
        .contains(&0)
        {
            return bad("the STUN answer rates and bursts must be at least 1");
        }
        if self.id_difficulty > mesh_proto::puzzle::MAX_DIFFICULTY {
            return bad(&format!(
                "id_difficulty must be at most {} bits (each bit doubles the keys a node makes)",
                mesh_proto::puzzle::MAX_DIFFICULTY
            ));
        }
        let prefix = &self.fleet_prefix;
        if prefix.is_empty()
            || prefix.len() > 64
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(
                "fleet_prefix must be 1 to 64 bytes with no whitespace or control character",
            );
        }
        if self.fleet_lease < Duration::from_secs(1) {
            return bad("fleet_lease must be at least 1 s (it is renewed every third of it)");
        }
        if self.fleet_timeout.is_zero() || self.fleet_timeout >= self.fleet_lease {
            return bad("fleet_timeout must be non-zero and shorter than fleet_lease");
        }
        if self.fleet_queue == 0 {
            return bad("fleet_queue must be at least 1");
        }
        if self.redis_ca.is_some() && !self.redis.as_ref().is_some_and(RedisUrl::is_tls) {
            return bad("redis_ca must come with a rediss:// redis URL");
        }
        Ok(())
    }

    /// How long a registration is kept in Redis without renewal: ten leases
    /// ([`Config::fleet_lease`]), at least a minute. What a fleet leaves in Redis after it
    /// stopped (killed, not shut down) is gone after this.
    pub fn fleet_registration_ttl(&self) -> Duration {
        (self.fleet_lease * 10).max(Duration::from_secs(60))
    }

    /// The limits announced to clients in the `Challenge` frame.
    pub fn limits(&self) -> Limits {
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Limits {
            max_frame_size: clamp(self.max_frame_size),
            max_payload_size: clamp(self.max_payload_size),
            frames_per_second: self.frames_per_second,
            frame_burst: self.frame_burst,
            id_difficulty: self.id_difficulty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_never_show_their_password() {
        let url: RedisUrl = "redis://:s3cret@127.0.0.1:6379/0".parse().unwrap();
        assert_eq!(url.expose(), "redis://:s3cret@127.0.0.1:6379/0");
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            format!("{:?}", Config::default().with_redis(Some(url.clone()))),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("127.0.0.1:6379"), "{shown}");
        }
        let tls: RedisUrl = "rediss://user:pw@redis.example:6380".parse().unwrap();
        assert!(tls.is_tls());
        for bad in ["http://:s3cret@h/", "redis://", "not a url s3cret"] {
            let err = bad.parse::<RedisUrl>().unwrap_err().to_string();
            assert!(err.contains("invalid Redis URL"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for config in [
            Config::default().with_listen_backlog(0),
            Config::default().with_max_connections(0),
            Config::default().with_max_frame_size(MAX_FRAME_SIZE + 1),
            Config::default().with_max_payload_size(16 * 1024),
            Config::default().with_frames_per_second(0),
            Config::default().with_idle_timeout(Duration::from_secs(1)),
            Config::default().with_max_sample(0),
            Config::default().with_stun_answers_per_source(0),
            Config::default().with_id_difficulty(25),
            Config::default().with_fleet_prefix("two words".into()),
            Config::default().with_fleet_lease(Duration::from_millis(500)),
            Config::default().with_fleet_timeout(Duration::from_secs(6)),
            Config::default().with_redis_ca(Some("ca.pem".into())),
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("must"), "{err}");
        }
    }
}

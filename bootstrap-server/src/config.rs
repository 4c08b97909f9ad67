//! Server configuration: every limit, with documented defaults.

use std::net::SocketAddr;
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
        Ok(())
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
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("must"), "{err}");
        }
    }
}

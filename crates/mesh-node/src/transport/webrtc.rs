//! WebRTC links: one webrtc-rs PeerConnection per session, carrying one reliable, ordered,
//! pre-negotiated DataChannel.
//!
//! [`WebRtcTransport`] implements the [`Transport`] contract on webrtc-rs 0.21 (the async
//! `webrtc` crate on its sans-IO `rtc` core). Each session runs as one task that owns its
//! PeerConnection and is the only producer of that session's [`TransportEvent`]s, so events
//! are in order per session and the session's single `Closed` is the last thing it says.
//!
//! How a link comes up:
//! - Both sides create the DataChannel themselves with stream id 0 (`negotiated`), so the
//!   channel opens as soon as the SCTP association is up: there is no DCEP round trip and
//!   no `on_data_channel` callback.
//! - Trickle ICE: the offerer emits its offer, then each local candidate as it is gathered,
//!   then `EndOfCandidates`; the answerer does the same after its answer. Remote candidates
//!   that arrive before the remote description are kept (up to a bound) and applied right
//!   after it. A remote that does not trickle puts its candidates in its SDP instead: they
//!   are taken out of it and applied after it the same way, so that one the session cannot
//!   use is skipped rather than refusing the whole description (protocol.md §10.6).
//! - The DTLS fingerprint in the SDP is checked by the DTLS handshake: an SDP whose
//!   fingerprint does not match the peer's certificate fails the handshake and the session
//!   closes. Since the driver verifies signaling signatures end to end, the channel is
//!   authenticated end to end.
//!
//! Sending: [`Transport::send`] puts the message on the link's bounded queue
//! ([`Config::with_send_queue_len`]); a writer task drains it into the DataChannel, which
//! blocks while more than [`Config::with_send_buffer_limit`] bytes are unacknowledged. A
//! full queue is [`SendError::Full`].
//!
//! Link-open latency: webrtc-rs 0.21.1 has two wake-up gaps in its driver that cost about
//! 200 ms each while a connection opens (the DTLS ClientHello waits for the next ICE timer
//! tick, and the SCTP INIT queued when DTLS completes waits for the next timer of any kind),
//! and a 1 s wait before nominating a peer-reflexive pair. [`Config::with_fast_open`] (on
//! by default) works around all three without patching the crates; see its docs.
//!
//! What the driver must know:
//! - Keep draining the event channel. A session waits while the channel is full, and so
//!   does its connection's driver (bounded queues all the way down), so a consumer that
//!   stops for long stalls every link's ICE, DTLS and SCTP.
//! - Open the answering side before handing it the offer: signals of unknown sessions are
//!   dropped.
//! - A message longer than [`Config::MAX_MESSAGE_SIZE`] (64 KiB), or than the remote's
//!   announced `a=max-message-size` if that is smaller, cannot be sent: the link's writer
//!   fails and the session closes with the reason.
//! - Every SDP the transport signals announces `a=max-message-size:65536`
//!   ([`Config::MAX_MESSAGE_SIZE`]). A remote that sends a larger message anyway breaks
//!   protocol.md §10.1: the message, up to [`Config::MAX_READ_SIZE`] (256 KiB), is reported
//!   as `Data` like any other (the mesh core's decoder refuses it, which costs the sender
//!   its link and is counted), and ends the session: nothing after it is read. webrtc-rs
//!   discards a message over 256 KiB inside its SCTP stack without telling anyone, so that
//!   one goes unseen and the link stays up.
//! - A remote that closes (or whose transport is dropped) is noticed at once; a remote that
//!   vanishes (crash, network gone) only when ICE consent fails, 5 s + 25 s later. A
//!   failed DTLS handshake is noticed after [`Config::with_dtls_timeout`].

mod handler;
mod ice;
mod sdp;
mod session;
mod turn_stream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use mesh_proto::NodeId;
use mesh_proto::signal::SessionId;
use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::PeerConnection;

pub use self::ice::IceServer;
pub use self::turn_stream::TurnStreamStats;
use crate::transport::{
    CandidatePairsFuture, Role, SendError, SignalBody, Transport, TransportEvent,
};

/// Configuration of a [`WebRtcTransport`]. Every field has a documented default and a
/// `with_*` builder.
#[derive(Clone, Debug)]
pub struct Config {
    bind_addrs: Vec<SocketAddr>,
    ice_servers: Vec<IceServer>,
    relay_only: bool,
    max_sessions: usize,
    send_queue_len: usize,
    send_buffer_limit: usize,
    fast_open: bool,
    ice_check_interval: Duration,
    max_early_candidates: usize,
    dtls_timeout: Duration,
    oversize_sends: bool,
    turn_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind_addrs: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            ice_servers: Vec::new(),
            relay_only: false,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            send_queue_len: Self::DEFAULT_SEND_QUEUE_LEN,
            send_buffer_limit: Self::DEFAULT_SEND_BUFFER_LIMIT,
            fast_open: true,
            ice_check_interval: Self::DEFAULT_FAST_ICE_CHECK_INTERVAL,
            max_early_candidates: Self::DEFAULT_MAX_EARLY_CANDIDATES,
            dtls_timeout: Self::DEFAULT_DTLS_TIMEOUT,
            oversize_sends: false,
            turn_ca: None,
        }
    }
}

impl Config {
    /// Default for [`Config::with_max_sessions`].
    pub const DEFAULT_MAX_SESSIONS: usize = 256;
    /// Default for [`Config::with_send_queue_len`].
    pub const DEFAULT_SEND_QUEUE_LEN: usize = 256;
    /// Default for [`Config::with_send_buffer_limit`]: 64 KiB.
    pub const DEFAULT_SEND_BUFFER_LIMIT: usize = 64 * 1024;
    /// Default for [`Config::with_ice_check_interval`] when fast open is on.
    pub const DEFAULT_FAST_ICE_CHECK_INTERVAL: Duration = Duration::from_millis(5);
    /// Default for [`Config::with_max_early_candidates`].
    pub const DEFAULT_MAX_EARLY_CANDIDATES: usize = 32;
    /// Default for [`Config::with_dtls_timeout`].
    pub const DEFAULT_DTLS_TIMEOUT: Duration = Duration::from_secs(10);
    /// webrtc-rs's own ICE check interval (used when fast open is off).
    pub const WEBRTC_DEFAULT_ICE_CHECK_INTERVAL: Duration = Duration::from_millis(200);
    /// How long ICE keeps checking one candidate pair before it gives the pair up, whatever
    /// the check interval: webrtc-rs's default (8 checks 200 ms apart).
    pub const ICE_PAIR_CHECK_BUDGET: Duration = Duration::from_millis(1600);
    /// The most bytes one message may have: `mesh_proto::codec::MAX_FRAME_SIZE`, and what
    /// every SDP of this transport announces as its `a=max-message-size` (RFC 8841's
    /// default). The transport sends nothing larger, nor larger than the remote announced.
    pub const MAX_MESSAGE_SIZE: usize = mesh_proto::codec::MAX_FRAME_SIZE;
    /// The largest message the transport reads off a link: 256 KiB, the most webrtc-rs
    /// 0.21.1 can be configured to reassemble (`SctpMaxMessageSize::MAX_MESSAGE_SIZE`). A
    /// message over [`Config::MAX_MESSAGE_SIZE`] and up to this is reported, so that it
    /// costs its sender the link; webrtc-rs drops a larger one unseen.
    pub const MAX_READ_SIZE: usize =
        rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize::MAX_MESSAGE_SIZE
            as usize;

    /// A configuration with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// The local UDP addresses each PeerConnection binds, one socket per address (and so
    /// one file descriptor per address per link).
    ///
    /// Default: `0.0.0.0:0`, which webrtc-rs expands to one socket per IPv4 interface
    /// address **except loopback and link-local**, on an ephemeral port. Add `[::]:0` for
    /// IPv6. A wildcard never includes loopback: to link processes on one host (tests),
    /// bind `127.0.0.1:0` explicitly.
    pub fn with_bind_addrs(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.bind_addrs = addrs;
        self
    }

    /// STUN/TURN servers used to gather server-reflexive and relay candidates. Check them
    /// with [`Config::validate`]. `stun:` and UDP `turn:` URLs go to webrtc-rs as they are;
    /// TURN over TCP (`turn:…?transport=tcp`) and over TLS (`turns:`), which webrtc-rs
    /// 0.21.1 does not speak, go through a local bridge (one TCP or TLS connection per
    /// allocation, see [`TurnStreamStats`] and docs/architecture.md). `stuns:` and TURN
    /// over DTLS are not used ([`IceServer::unsupported_urls`]).
    ///
    /// Default: none (host candidates only). With no `stun:` server here, sessions opened
    /// after the bootstrap server announced its STUN responder use it
    /// ([`Transport::use_server_stun`]).
    pub fn with_ice_servers(mut self, servers: Vec<IceServer>) -> Self {
        self.ice_servers = servers;
        self
    }

    /// Gathers only relay candidates (ICE transport policy `relay`): every link goes through
    /// a TURN server of [`Config::with_ice_servers`], and without one no link opens. For
    /// testing a TURN server, or to hide this node's addresses from its peers.
    ///
    /// Default: off (host, server-reflexive and relay candidates).
    pub fn with_relay_only(mut self, on: bool) -> Self {
        self.relay_only = on;
        self
    }

    /// How many sessions may exist at once (opening or open). [`Transport::open`] fails
    /// beyond it.
    ///
    /// Default: [`Config::DEFAULT_MAX_SESSIONS`] (256). Each open link costs about 0.3 MB
    /// and one file descriptor per bound address.
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// How many messages [`Transport::send`] may queue per link before it returns
    /// [`SendError::Full`].
    ///
    /// Default: [`Config::DEFAULT_SEND_QUEUE_LEN`] (256). Minimum 1.
    pub fn with_send_queue_len(mut self, n: usize) -> Self {
        self.send_queue_len = n.max(1);
        self
    }

    /// How many bytes may be sent on a link's DataChannel and not yet acknowledged before
    /// the link's writer waits (the DataChannel send-buffer limit).
    ///
    /// Default: [`Config::DEFAULT_SEND_BUFFER_LIMIT`] (64 KiB). It keeps a burst from
    /// overrunning the receiver's UDP socket buffer (208 KiB by default on Linux), which
    /// otherwise drops datagrams and stalls SCTP on retransmission timeouts. It also caps a
    /// link's throughput at about `limit / RTT` (64 KiB per 100 ms ≈ 5 Mbit/s). `0` means
    /// no limit.
    pub fn with_send_buffer_limit(mut self, bytes: usize) -> Self {
        self.send_buffer_limit = bytes;
        self
    }

    /// Works around webrtc-rs 0.21.1's link-open stalls (400 ms, sometimes 1.4 s, down to
    /// under 10 ms on loopback):
    /// - ICE checks run every [`Config::with_ice_check_interval`] instead of 200 ms while
    ///   a connection is checking (the DTLS ClientHello is only sent on an ICE timer tick),
    ///   with as many checks per pair as keep webrtc-rs's 1.6 s per-pair budget, so slow
    ///   paths are not given up early. Once connected the ICE timer is back to 200 ms, so an
    ///   idle link costs the same CPU either way;
    /// - when DTLS completes, the session pokes its connection's driver so that the SCTP
    ///   INIT queued by that event is sent at once rather than on the next timer;
    /// - a peer-reflexive candidate may be nominated at once. When the remote's first check
    ///   arrives before its signaled candidate (the usual case with relayed signaling),
    ///   webrtc-rs otherwise waits 1 s before nominating that pair. The cost: with TURN
    ///   configured, a relayed path first seen as peer-reflexive can win over a direct one
    ///   that would have validated a moment later.
    ///
    /// Default: on. Off is webrtc-rs's stock behaviour, kept for comparison.
    pub fn with_fast_open(mut self, on: bool) -> Self {
        self.fast_open = on;
        self
    }

    /// The ICE check interval used while connecting when fast open is on.
    ///
    /// Default: [`Config::DEFAULT_FAST_ICE_CHECK_INTERVAL`] (5 ms). Clamped to at least
    /// 1 ms. The DTLS handshake starts up to one interval after ICE connects, so this is
    /// most of what a link takes to open on loopback (about 8 ms at 5 ms, 4 ms at 1 ms).
    /// While checking, every candidate pair in progress gets one STUN binding request per
    /// interval until a pair succeeds, and an unreachable pair gets 1.6 s / interval of them
    /// (320 at 5 ms; 8 with fast open off).
    pub fn with_ice_check_interval(mut self, interval: Duration) -> Self {
        self.ice_check_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How many remote candidates of a session are kept while its remote description has
    /// not arrived; further ones are dropped (and logged).
    ///
    /// Default: [`Config::DEFAULT_MAX_EARLY_CANDIDATES`] (32).
    pub fn with_max_early_candidates(mut self, n: usize) -> Self {
        self.max_early_candidates = n;
        self
    }

    /// How long after ICE connects the link may take to open (DTLS handshake, then SCTP)
    /// before the session closes.
    ///
    /// This is not a session-setup timeout (the caller owns that): it is how a failed DTLS
    /// handshake becomes `Closed`. webrtc-rs 0.21.1 only logs a handshake failure, such as
    /// a certificate that does not match the SDP's fingerprint; the connection state never
    /// becomes `failed`, so without this the session would hang until the caller gave up.
    ///
    /// Default: [`Config::DEFAULT_DTLS_TIMEOUT`] (10 s, which leaves room for DTLS's
    /// 1 s, 2 s, 4 s retransmissions on a lossy path; on loopback the link opens within a
    /// few milliseconds of ICE).
    pub fn with_dtls_timeout(mut self, timeout: Duration) -> Self {
        self.dtls_timeout = timeout;
        self
    }

    /// A PEM file of CA certificates trusted for TURN over TLS (`turns:`) besides the
    /// system's store: for a TURN server whose certificate a private CA signed. The server's
    /// certificate must name the URL's host (a DNS name, or an IP address SAN for
    /// `turns:192.0.2.1`). Read by [`Config::validate`] and when the transport starts.
    ///
    /// Default: none (the system's CA store only).
    pub fn with_turn_ca(mut self, path: Option<PathBuf>) -> Self {
        self.turn_ca = path;
        self
    }

    /// Lets the link's writer send messages over [`Config::MAX_MESSAGE_SIZE`] and over the
    /// remote's announced `a=max-message-size` (up to [`Config::MAX_READ_SIZE`]), which
    /// protocol.md §10.1 forbids: for tests of how a peer handles oversized input, with
    /// `Node::send_raw_to_neighbour`. Not part of the stable API.
    ///
    /// Default: off.
    #[doc(hidden)]
    pub fn with_oversize_sends(mut self, on: bool) -> Self {
        self.oversize_sends = on;
        self
    }

    /// Checks the ICE servers ([`IceServer::validate`]): every URL parses as webrtc-rs
    /// reads it, and TURN servers have credentials; and that `relay_only` has a TURN
    /// server to relay through. [`crate::Node::join`] calls it.
    pub fn validate(&self) -> Result<(), crate::Error> {
        self.ice_servers.iter().try_for_each(IceServer::validate)?;
        if let Some(path) = &self.turn_ca {
            turn_stream::read_ca(path).map_err(|why| crate::Error::TurnCa { why })?;
        }
        let has_turn = self.ice_servers.iter().any(|server| {
            server
                .urls
                .iter()
                .any(|raw| rtc::ice::url::Url::parse_url(raw).is_ok_and(|url| ice::is_turn(&url)))
        });
        if self.relay_only && !has_turn {
            return Err(crate::Error::IceServer {
                url: String::new(),
                why: "relay-only needs a TURN server: without one no link can open".into(),
                source: None,
            });
        }
        Ok(())
    }

    /// See [`Config::with_turn_ca`].
    pub fn turn_ca(&self) -> Option<&Path> {
        self.turn_ca.as_deref()
    }

    /// See [`Config::with_bind_addrs`].
    pub fn bind_addrs(&self) -> &[SocketAddr] {
        &self.bind_addrs
    }

    /// See [`Config::with_ice_servers`].
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }

    /// See [`Config::with_relay_only`].
    pub fn relay_only(&self) -> bool {
        self.relay_only
    }

    /// See [`Config::with_max_sessions`].
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// See [`Config::with_send_queue_len`].
    pub fn send_queue_len(&self) -> usize {
        self.send_queue_len
    }

    /// See [`Config::with_send_buffer_limit`].
    pub fn send_buffer_limit(&self) -> usize {
        self.send_buffer_limit
    }

    /// See [`Config::with_fast_open`].
    pub fn fast_open(&self) -> bool {
        self.fast_open
    }

    /// See [`Config::with_ice_check_interval`].
    pub fn ice_check_interval(&self) -> Duration {
        self.ice_check_interval
    }

    /// See [`Config::with_max_early_candidates`].
    pub fn max_early_candidates(&self) -> usize {
        self.max_early_candidates
    }

    /// See [`Config::with_dtls_timeout`].
    pub fn dtls_timeout(&self) -> Duration {
        self.dtls_timeout
    }
}

/// Real WebRTC links. See the [module docs](self).
///
/// Create it inside a Tokio runtime (it spawns its session tasks there). Dropping it closes
/// every session; each still reports its `Closed`.
#[derive(Debug)]
pub struct WebRtcTransport {
    shared: Arc<Shared>,
}

impl WebRtcTransport {
    /// A transport reporting on `events`. Must be called from within a Tokio runtime;
    /// otherwise every [`Transport::open`] fails.
    pub fn new(config: Config, events: mpsc::Sender<TransportEvent>) -> Self {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let turn_streams = match &runtime {
            Some(runtime) => start_turn_streams(&config, runtime),
            None => turn_stream::Bridges::default(),
        };
        Self {
            shared: Arc::new(Shared {
                config,
                events,
                runtime,
                turn_streams,
                server_stun: Mutex::new(None),
                sessions: Mutex::new(HashMap::new()),
                next_serial: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// How many sessions exist (opening or open, not yet `Closed`).
    pub fn session_count(&self) -> usize {
        self.shared.sessions().len()
    }

    /// The ICE servers a session opened now uses: those of the configuration, plus the
    /// bootstrap server's STUN responder if the configuration has no STUN server
    /// ([`Transport::use_server_stun`]).
    pub fn ice_servers(&self) -> Vec<IceServer> {
        self.shared.ice_servers()
    }

    /// What the TURN-over-TCP/TLS bridges did so far (all zero without such a server).
    pub fn turn_stream_stats(&self) -> TurnStreamStats {
        self.shared.turn_streams.stats()
    }
}

/// The bridges for the TCP/TLS TURN URLs of `config`, one loopback socket per address
/// family the PeerConnections bind.
fn start_turn_streams(config: &Config, runtime: &tokio::runtime::Handle) -> turn_stream::Bridges {
    let trust = match config.turn_ca.as_deref().map(turn_stream::read_ca) {
        Some(Ok(certs)) => certs,
        Some(Err(why)) => {
            tracing::error!("TURN over TLS: {why}; trusting the system's CAs only");
            Vec::new()
        }
        None => Vec::new(),
    };
    let families = (
        config.bind_addrs.iter().any(SocketAddr::is_ipv4),
        config.bind_addrs.iter().any(SocketAddr::is_ipv6),
    );
    // webrtc-rs runs one TURN client per socket of a PeerConnection, and a connection binds
    // one socket per bind address.
    let max_flows = config
        .max_sessions
        .saturating_mul(config.bind_addrs.len().max(1));
    turn_stream::Bridges::start(&config.ice_servers, families, &trust, max_flows, runtime)
}

impl Transport for WebRtcTransport {
    fn open(&self, session: SessionId, peer: NodeId, role: Role) -> Result<(), crate::Error> {
        let Some(runtime) = self.shared.runtime.clone() else {
            return Err(crate::Error::NoRuntime);
        };
        let (signals_tx, signals_rx) = mpsc::channel(SIGNAL_QUEUE_LEN);
        let (close_tx, close_rx) = oneshot::channel();
        let serial = self.shared.next_serial.fetch_add(1, Ordering::Relaxed);
        {
            let mut sessions = self.shared.sessions();
            if sessions.contains_key(&session) {
                return Err(crate::Error::SessionExists(session));
            }
            if sessions.len() >= self.shared.config.max_sessions {
                return Err(crate::Error::SessionLimit {
                    limit: self.shared.config.max_sessions,
                });
            }
            sessions.insert(
                session,
                Entry {
                    serial,
                    signals: signals_tx,
                    close: Some(close_tx),
                    link: None,
                    pc: None,
                },
            );
        }
        let task = session::Session {
            id: session,
            peer,
            role,
            serial,
            shared: Arc::clone(&self.shared),
            signals: signals_rx,
            close: close_rx,
        };
        runtime.spawn(task.run());
        Ok(())
    }

    fn remote_signal(&self, session: SessionId, signal: SignalBody) {
        let sessions = self.shared.sessions();
        let Some(entry) = sessions.get(&session) else {
            tracing::debug!(%session, "remote signal for an unknown session ignored");
            return;
        };
        if let Err(err) = entry.signals.try_send(signal) {
            tracing::warn!(%session, "remote signal dropped: {err}");
        }
    }

    fn send(&self, session: SessionId, bytes: Bytes) -> Result<(), SendError> {
        let link = {
            let sessions = self.shared.sessions();
            let entry = sessions.get(&session).ok_or(SendError::Closed)?;
            entry.link.clone().ok_or(SendError::Closed)?
        };
        link.try_send(bytes).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    fn close(&self, session: SessionId) {
        let close = self
            .shared
            .sessions()
            .get_mut(&session)
            .and_then(|entry| entry.close.take());
        if let Some(close) = close {
            // The session task may be finishing on its own; either way it sends `Closed`.
            let _ = close.send(());
        }
    }

    fn candidate_pairs(&self, sessions: &[SessionId]) -> CandidatePairsFuture {
        let pcs: Vec<_> = {
            let table = self.shared.sessions();
            sessions
                .iter()
                .map(|session| table.get(session).and_then(|entry| entry.pc.clone()))
                .collect()
        };
        let relays = self.shared.turn_streams.protocols();
        Box::pin(async move {
            let mut pairs = Vec::with_capacity(pcs.len());
            for pc in pcs {
                pairs.push(match pc.and_then(|pc| pc.upgrade()) {
                    Some(pc) => ice::selected_pair(pc, |addr| relays.of(addr)).await,
                    None => None,
                });
            }
            pairs
        })
    }

    fn turn_stream_stats(&self) -> TurnStreamStats {
        self.shared.turn_streams.stats()
    }

    fn use_server_stun(&self, url: Option<String>) {
        *self
            .shared
            .server_stun
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = url;
    }
}

impl Drop for WebRtcTransport {
    fn drop(&mut self) {
        let closes: Vec<_> = self
            .shared
            .sessions()
            .values_mut()
            .filter_map(|entry| entry.close.take())
            .collect();
        for close in closes {
            let _ = close.send(());
        }
    }
}

/// Remote signals queued per session before its task takes them: an offer or answer and
/// the candidates; more than this in flight is a misbehaving peer.
const SIGNAL_QUEUE_LEN: usize = 64;

/// What the transport handle and the session tasks share.
#[derive(Debug)]
struct Shared {
    config: Config,
    events: mpsc::Sender<TransportEvent>,
    runtime: Option<tokio::runtime::Handle>,
    /// The local bridges to TCP/TLS TURN servers; stopped when the last session is gone.
    turn_streams: turn_stream::Bridges,
    /// The bootstrap server's STUN responder, from its last `Welcome`.
    server_stun: Mutex<Option<String>>,
    sessions: Mutex<HashMap<SessionId, Entry>>,
    next_serial: AtomicU64,
}

impl Shared {
    /// The session table. Never held across an `.await`.
    fn sessions(&self) -> MutexGuard<'_, HashMap<SessionId, Entry>> {
        // A panic while holding this lock leaves the map itself consistent (every update is
        // one insert, remove or field write), so a poisoned lock is still usable.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes the entry of `session` if it is still the one of task `serial`.
    fn remove(&self, session: SessionId, serial: u64) {
        let mut sessions = self.sessions();
        if sessions.get(&session).is_some_and(|e| e.serial == serial) {
            sessions.remove(&session);
        }
    }

    /// Publishes the send queue and the connection of `session`'s open link.
    fn set_link(
        &self,
        session: SessionId,
        serial: u64,
        link: mpsc::Sender<Bytes>,
        pc: Weak<dyn PeerConnection>,
    ) {
        if let Some(entry) = self.sessions().get_mut(&session)
            && entry.serial == serial
        {
            entry.link = Some(link);
            entry.pc = Some(pc);
        }
    }

    /// See [`WebRtcTransport::ice_servers`].
    fn ice_servers(&self) -> Vec<IceServer> {
        let server_stun = self
            .server_stun
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let servers = ice::effective_servers(&self.config.ice_servers, server_stun.as_deref());
        self.turn_streams.rewrite(servers)
    }
}

/// The handle's view of one session.
#[derive(Debug)]
struct Entry {
    /// Tells this entry's task from a later one with the same session id.
    serial: u64,
    signals: mpsc::Sender<SignalBody>,
    close: Option<oneshot::Sender<()>>,
    /// The open link's send queue; `None` until `LinkUp`.
    link: Option<mpsc::Sender<Bytes>>,
    /// The open link's connection, to read its selected candidate pair; `None` until
    /// `LinkUp`. Weak: the session task owns it and closes it.
    pc: Option<Weak<dyn PeerConnection>>,
}

//! TURN over TCP and over TLS for webrtc-rs 0.21.1, which speaks TURN over UDP only (its
//! `turn_relayer.rs` skips every other URL).
//!
//! For each configured `turn:…?transport=tcp` or `turns:` URL the transport runs one
//! [`Bridge`]: a UDP socket on loopback that webrtc-rs is told is a UDP TURN server
//! (`turn:127.0.0.1:P?transport=udp`, with the URL's credentials). webrtc-rs runs one TURN
//! client per PeerConnection socket, and each client's first message is an Allocate
//! request, so each source address that sends the bridge an Allocate is one allocation:
//! the bridge opens one TCP (or TLS) connection to the real server for it (a *flow*) and
//! passes messages both ways:
//! - towards the server, each datagram is one STUN or ChannelData message, written to the
//!   stream as RFC 8656 §12.5 says (ChannelData padded to a multiple of 4 bytes);
//! - from the server, the stream is split into its messages
//!   ([`TurnStreamDecoder`]), each sent back to the client as one datagram.
//!
//! The TURN server sees an ordinary TURN-over-TCP/TLS client, and the relayed leg (server ↔
//! peers) stays UDP, as it is for browsers. Relay candidates and their authentication are
//! webrtc-rs's own: the bridge only carries bytes.
//!
//! A flow ends when webrtc-rs releases its allocation (a Refresh with LIFETIME 0, sent when
//! the PeerConnection closes: the flow gives the answer [`RELEASE_GRACE`] to come back),
//! when the server closes the stream, when the stream breaks or carries something that is
//! not TURN, or after [`IDLE_TIMEOUT`] without a datagram from webrtc-rs. Bounded: at most
//! `max_flows` flows per bridge, [`FLOW_QUEUE_LEN`] datagrams queued per flow (a datagram
//! that finds the queue full is dropped, as a UDP path would), [`CONNECT_TIMEOUT`] for the
//! connection and its TLS handshake. Only a source whose first datagram is an Allocate
//! request gets a flow; anything else from a source without one is dropped and counted.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rtc::ice::url::{ProtoType, SchemeType, Url};
use rtc::shared::turn_framing::TurnStreamDecoder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::ice::IceServer;
use crate::transport::CandidateProtocol;

/// Datagrams queued per flow towards its server; more are dropped.
pub const FLOW_QUEUE_LEN: usize = 256;
/// Time allowed to connect to the TURN server, TLS handshake included.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A flow with no datagram from webrtc-rs for this long ends: webrtc-rs refreshes a live
/// allocation well within a TURN allocation's default lifetime (600 s, RFC 8656 §7.2), so
/// by then the allocation is gone on the server too.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a flow stays after webrtc-rs released its allocation, for the answer.
pub const RELEASE_GRACE: Duration = Duration::from_secs(2);
/// The largest datagram read: a STUN or ChannelData message is at most 20 + 65 535 bytes.
const MAX_DATAGRAM: usize = 20 + u16::MAX as usize;
/// Bytes read from a stream at once.
const READ_CHUNK: usize = 16 * 1024;

/// STUN message type of an Allocate request (RFC 8656 §18).
const ALLOCATE_REQUEST: u16 = 0x0003;
/// STUN message type of a Refresh request.
const REFRESH_REQUEST: u16 = 0x0004;
/// STUN message type of an Allocate success response.
const ALLOCATE_SUCCESS: u16 = 0x0103;
/// The LIFETIME attribute.
const ATTR_LIFETIME: u16 = 0x000d;
/// The XOR-RELAYED-ADDRESS attribute.
const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
/// The STUN magic cookie.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// What the TURN-over-TCP/TLS bridges of one transport did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnStreamStats {
    /// Connections opened to a TURN server over TCP or TLS: one per allocation webrtc-rs
    /// made through such a server.
    pub connections: u64,
    /// Of those, the ones open now.
    pub open: u64,
    /// Connections that could not be made: refused, unreachable, timed out, or a failed
    /// TLS handshake (e.g. a certificate no trusted CA signed: see
    /// [`super::Config::with_turn_ca`]).
    pub failures: u64,
    /// Bytes written to TURN servers over these connections (framing included).
    pub bytes_sent: u64,
    /// Bytes read from them.
    pub bytes_received: u64,
    /// Datagrams from webrtc-rs that went nowhere: their flow's queue was full, the flow
    /// limit was reached, or a source without a flow sent something other than an Allocate.
    pub dropped: u64,
}

/// The counters behind [`TurnStreamStats`], shared by every bridge of a transport.
#[derive(Debug, Default)]
pub(super) struct Counters {
    connections: AtomicU64,
    open: AtomicU64,
    failures: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> TurnStreamStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TurnStreamStats {
            connections: get(&self.connections),
            open: get(&self.open),
            failures: get(&self.failures),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            dropped: get(&self.dropped),
        }
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Whether webrtc-rs needs a bridge for `url` to use it: TURN over TCP, or TURN over TLS
/// (`turns:`, whose transport is TCP unless it says otherwise).
pub(super) fn is_stream_turn(url: &Url) -> bool {
    matches!(
        (url.scheme, url.proto),
        (SchemeType::Turn | SchemeType::Turns, ProtoType::Tcp)
    )
}

/// The real server behind one bridge.
struct Target {
    /// The URL as configured, for logs.
    url: String,
    host: String,
    port: u16,
    /// `Tcp` or `Tls`, as relay candidates through it are reported.
    protocol: CandidateProtocol,
    /// `turns:`: TLS over the TCP connection.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// The bridges of one transport: one per TCP/TLS TURN URL, each with a loopback UDP socket
/// per address family the PeerConnections bind. Dropping it stops them all and closes
/// their connections.
#[derive(Debug, Default)]
pub(super) struct Bridges {
    /// Configured URL → the UDP TURN URLs webrtc-rs is given instead.
    local_urls: HashMap<String, Vec<String>>,
    /// The relayed address of every allocation made through a bridge → how its flow
    /// reaches the server (TCP or TLS), to report the relay candidates.
    relays: RelayProtocols,
    tasks: Vec<tokio::task::AbortHandle>,
    counters: Arc<Counters>,
}

impl Bridges {
    /// Starts a bridge for every TCP/TLS TURN URL of `servers`. `families` are the address
    /// families the PeerConnections bind (webrtc-rs pairs a TURN server with the sockets of
    /// its family only); `trust` the extra CA certificates for `turns:`. A bridge that
    /// cannot start is logged and left out: webrtc-rs then skips its URL.
    pub(super) fn start(
        servers: &[IceServer],
        families: (bool, bool),
        trust: &[CertificateDer<'static>],
        max_flows: usize,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let mut bridges = Self::default();
        let _guard = runtime.enter();
        let mut tls: Option<Arc<ClientConfig>> = None;
        for raw in servers.iter().flat_map(|s| s.urls.iter()) {
            let Ok(url) = Url::parse_url(raw) else {
                continue;
            };
            if !is_stream_turn(&url) || bridges.local_urls.contains_key(raw) {
                continue;
            }
            let tls = match url.scheme {
                SchemeType::Turns => {
                    let config = tls.get_or_insert_with(|| client_config(trust));
                    match ServerName::try_from(url.host.clone()) {
                        Ok(name) => Some((TlsConnector::from(Arc::clone(config)), name)),
                        Err(err) => {
                            tracing::error!(
                                "{raw}: {:?} is not a TLS server name: {err}",
                                url.host
                            );
                            continue;
                        }
                    }
                }
                _ => None,
            };
            let target = Arc::new(Target {
                url: raw.clone(),
                host: url.host.clone(),
                port: url.port,
                protocol: match url.scheme {
                    SchemeType::Turns => CandidateProtocol::Tls,
                    _ => CandidateProtocol::Tcp,
                },
                tls,
            });
            let (v4, v6) = families;
            let mut locals = Vec::new();
            for (on, ip) in [
                (v4, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
                (v6, SocketAddr::from((Ipv6Addr::LOCALHOST, 0))),
            ] {
                if !on {
                    continue;
                }
                match bind(ip) {
                    Ok((socket, local)) => {
                        let bridge = Bridge {
                            socket: Arc::new(socket),
                            target: Arc::clone(&target),
                            counters: Arc::clone(&bridges.counters),
                            relays: bridges.relays.clone(),
                            max_flows,
                        };
                        bridges
                            .tasks
                            .push(runtime.spawn(bridge.run()).abort_handle());
                        let host = match local {
                            SocketAddr::V4(a) => a.ip().to_string(),
                            SocketAddr::V6(a) => format!("[{}]", a.ip()),
                        };
                        locals.push(format!("turn:{host}:{}?transport=udp", local.port()));
                        tracing::debug!("{raw}: bridged for webrtc-rs at udp {local}");
                    }
                    Err(err) => tracing::error!(
                        "{raw}: cannot bind the local UDP bridge on {ip}: {err}; the URL \
                         will not be used"
                    ),
                }
            }
            bridges.local_urls.insert(raw.clone(), locals);
        }
        bridges
    }

    /// How the relay candidates gathered through the bridges reach their servers, for
    /// [`super::ice::selected_pair`].
    pub(super) fn protocols(&self) -> RelayProtocols {
        self.relays.clone()
    }

    /// `servers` as webrtc-rs is to see them: every TCP/TLS TURN URL that has a bridge
    /// replaced by the bridge's UDP URLs (same credentials).
    pub(super) fn rewrite(&self, servers: Vec<IceServer>) -> Vec<IceServer> {
        if self.local_urls.is_empty() {
            return servers;
        }
        servers
            .into_iter()
            .map(|mut server| {
                server.urls = server
                    .urls
                    .into_iter()
                    .flat_map(|url| match self.local_urls.get(&url) {
                        Some(locals) => locals.clone(),
                        None => vec![url],
                    })
                    .collect();
                server
            })
            .filter(|server| !server.urls.is_empty())
            .collect()
    }

    /// What the bridges did so far.
    pub(super) fn stats(&self) -> TurnStreamStats {
        self.counters.snapshot()
    }
}

impl Drop for Bridges {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The relayed address of each live allocation made through a bridge (read from the
/// server's Allocate success response) and how its flow reaches the server: a relay
/// candidate's address is its allocation's relayed address, and webrtc-rs does not record
/// which TURN URL a candidate came from. At most one entry per flow.
#[derive(Clone, Debug, Default)]
pub(super) struct RelayProtocols(Arc<std::sync::Mutex<HashMap<SocketAddr, CandidateProtocol>>>);

impl RelayProtocols {
    /// How the local relay candidate at `relayed` reaches its server: TCP or TLS through a
    /// bridge, else UDP.
    pub(super) fn of(&self, relayed: SocketAddr) -> CandidateProtocol {
        self.map()
            .get(&relayed)
            .copied()
            .unwrap_or(CandidateProtocol::Udp)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, CandidateProtocol>> {
        // Every update is one insert or remove: a poisoned map is still consistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The extra CA certificates of `path` (PEM, one or more `CERTIFICATE` blocks).
pub(super) fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{} is not a PEM certificate file: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM CERTIFICATE block", path.display()));
    }
    Ok(certs)
}

/// A TLS client trusting the system's CA store and `extra`.
fn client_config(extra: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for err in &system.errors {
        tracing::warn!("reading the system's CA certificates: {err}");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    tracing::debug!("TURN over TLS trusts {added} system CA certificates ({ignored} unusable)");
    for cert in extra {
        if let Err(err) = roots.add(cert.clone()) {
            tracing::warn!("a --turn-ca certificate is not usable as a CA: {err}");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, SocketAddr)> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket)?;
    let local = socket.local_addr()?;
    Ok((socket, local))
}

/// One loopback UDP socket standing for one TCP/TLS TURN server.
struct Bridge {
    socket: Arc<UdpSocket>,
    target: Arc<Target>,
    counters: Arc<Counters>,
    relays: RelayProtocols,
    max_flows: usize,
}

impl Bridge {
    /// Reads datagrams and hands each to its source's flow, until aborted.
    async fn run(self) {
        let mut flows: HashMap<SocketAddr, mpsc::Sender<Bytes>> = HashMap::new();
        // Owns the flows' tasks: aborting the bridge aborts them.
        let mut tasks = JoinSet::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, source) = tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok(r) => r,
                    Err(err) => {
                        // ICMP errors (a client's socket gone) surface here on Linux.
                        tracing::trace!("{}: bridge socket: {err}", self.target.url);
                        continue;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            let datagram = Bytes::copy_from_slice(&buf[..n]);
            if let Some(flow) = flows.get(&source)
                && !flow.is_closed()
            {
                if flow.try_send(datagram).is_err() {
                    Counters::add(&self.counters.dropped, 1);
                }
                continue;
            }
            if stun_type(&datagram) != Some(ALLOCATE_REQUEST) {
                Counters::add(&self.counters.dropped, 1);
                continue;
            }
            flows.retain(|_, flow| !flow.is_closed());
            if flows.len() >= self.max_flows {
                tracing::warn!(
                    "{}: {} TURN connections open, the most allowed: an allocation from \
                     {source} is refused",
                    self.target.url,
                    flows.len()
                );
                Counters::add(&self.counters.dropped, 1);
                continue;
            }
            let (tx, rx) = mpsc::channel(FLOW_QUEUE_LEN);
            let _ = tx.try_send(datagram);
            flows.insert(source, tx);
            let flow = Flow {
                socket: Arc::clone(&self.socket),
                target: Arc::clone(&self.target),
                counters: Arc::clone(&self.counters),
                relays: self.relays.clone(),
                source,
            };
            tasks.spawn(flow.run(rx));
        }
    }
}

/// One allocation's connection to the server.
struct Flow {
    socket: Arc<UdpSocket>,
    target: Arc<Target>,
    counters: Arc<Counters>,
    relays: RelayProtocols,
    /// The webrtc-rs TURN client's socket.
    source: SocketAddr,
}

impl Flow {
    async fn run(self, datagrams: mpsc::Receiver<Bytes>) {
        let target = &self.target;
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|err| format!("cannot connect: {err}"))?;
            let _ = tcp.set_nodelay(true);
            match &target.tls {
                None => Ok(Stream::Tcp(tcp)),
                Some((connector, name)) => connector
                    .connect(name.clone(), tcp)
                    .await
                    .map(|tls| Stream::Tls(Box::new(tls)))
                    .map_err(|err| format!("TLS handshake failed: {err}")),
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("no connection within {CONNECT_TIMEOUT:?}")));
        let stream = match connected {
            Ok(stream) => stream,
            Err(why) => {
                Counters::add(&self.counters.failures, 1);
                tracing::warn!("TURN server {}: {why}", target.url);
                return;
            }
        };
        Counters::add(&self.counters.connections, 1);
        Counters::add(&self.counters.open, 1);
        tracing::debug!(source = %self.source, "TURN connection to {} open", target.url);
        let mut relayed = None;
        let why = match stream {
            Stream::Tcp(s) => self.carry(s, datagrams, &mut relayed).await,
            Stream::Tls(s) => self.carry(*s, datagrams, &mut relayed).await,
        };
        if let Some(addr) = relayed {
            self.relays.map().remove(&addr);
        }
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(source = %self.source, "TURN connection to {} closed: {why}", target.url);
    }

    /// Carries messages both ways until one side ends; why it ended.
    /// The allocation's relayed address, once the server granted it, goes to `relayed`.
    async fn carry<S>(
        &self,
        stream: S,
        mut datagrams: mpsc::Receiver<Bytes>,
        relayed: &mut Option<SocketAddr>,
    ) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let up = async {
            let mut wait = IDLE_TIMEOUT;
            loop {
                let datagram = match tokio::time::timeout(wait, datagrams.recv()).await {
                    Ok(Some(d)) => d,
                    Ok(None) => return "the bridge stopped".to_owned(),
                    Err(_) if wait == RELEASE_GRACE => {
                        return "webrtc-rs released the allocation".to_owned();
                    }
                    Err(_) => return format!("no datagram from webrtc-rs for {IDLE_TIMEOUT:?}"),
                };
                let Some(framed) = frame(&datagram) else {
                    Counters::add(&self.counters.dropped, 1);
                    continue;
                };
                // Flushed every time: a TLS stream may hold written records back until then
                // (a no-op for TCP).
                if let Err(err) = async {
                    writer.write_all(&framed).await?;
                    writer.flush().await
                }
                .await
                {
                    return format!("write: {err}");
                }
                Counters::add(&self.counters.bytes_sent, framed.len());
                if is_release(&datagram) {
                    wait = RELEASE_GRACE;
                }
            }
        };
        let down = async {
            let mut decoder = TurnStreamDecoder::new();
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let n = match reader.read(&mut buf).await {
                    Ok(0) => return "the server closed the connection".to_owned(),
                    Ok(n) => n,
                    Err(err) => return format!("read: {err}"),
                };
                Counters::add(&self.counters.bytes_received, n);
                decoder.extend_from_slice(&buf[..n]);
                loop {
                    match decoder.next_message() {
                        Ok(Some(message)) => {
                            if relayed.is_none()
                                && let Some(addr) = relayed_address(&message)
                            {
                                *relayed = Some(addr);
                                self.relays.map().insert(addr, self.target.protocol);
                            }
                            // Lost only if the client's socket is gone: UDP semantics.
                            let _ = self.socket.send_to(&message, self.source).await;
                        }
                        Ok(None) => break,
                        Err(err) => {
                            return format!("the server sent something that is not TURN: {err}");
                        }
                    }
                }
            }
        };
        tokio::select! {
            why = up => why,
            why = down => why,
        }
    }
}

/// A connection to a TURN server, plain or TLS.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The STUN message type of `datagram`, if it looks like a STUN message (two zero bits,
/// the magic cookie).
fn stun_type(datagram: &[u8]) -> Option<u16> {
    (datagram.len() >= 20 && datagram[0] >> 6 == 0 && datagram[4..8] == [0x21, 0x12, 0xa4, 0x42])
        .then(|| u16::from_be_bytes([datagram[0], datagram[1]]))
}

/// `datagram` as it goes on a stream (RFC 8656 §12.5): a STUN message as it is, a
/// ChannelData message padded to a multiple of 4 bytes; `None` for anything else or a
/// message whose length field disagrees with the datagram.
fn frame(datagram: &[u8]) -> Option<Vec<u8>> {
    if datagram.len() < 4 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    match datagram[0] >> 6 {
        0b00 if datagram.len() == 20 + length => Some(datagram.to_vec()),
        0b01 if datagram.len() >= 4 + length => {
            let mut framed = datagram[..4 + length].to_vec();
            framed.resize((4 + length).next_multiple_of(4), 0);
            Some(framed)
        }
        _ => None,
    }
}

/// The value of the first attribute of type `kind` of the STUN message `message`, if it
/// has one (and its attributes are well formed up to it).
fn attribute(message: &[u8], kind: u16) -> Option<&[u8]> {
    let mut attrs = message.get(20..)?;
    while attrs.len() >= 4 {
        let t = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        if t == kind {
            return Some(value);
        }
        attrs = attrs.get(4 + len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

/// The relayed address an Allocate success response grants (XOR-RELAYED-ADDRESS, RFC 8656
/// §18.5, encoded as XOR-MAPPED-ADDRESS is: RFC 8489 §14.2).
fn relayed_address(message: &[u8]) -> Option<SocketAddr> {
    if stun_type(message)? != ALLOCATE_SUCCESS {
        return None;
    }
    let value = attribute(message, ATTR_XOR_RELAYED_ADDRESS)?;
    let port = u16::from_be_bytes([
        value.get(2)? ^ MAGIC_COOKIE[0],
        value.get(3)? ^ MAGIC_COOKIE[1],
    ]);
    let ip = match value.get(1)? {
        0x01 => {
            let x: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            let octets: Vec<u8> = x.iter().zip(MAGIC_COOKIE).map(|(a, b)| a ^ b).collect();
            std::net::IpAddr::from(<[u8; 4]>::try_from(octets).ok()?)
        }
        0x02 => {
            let x: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            let mask = MAGIC_COOKIE.iter().chain(&message[8..20]);
            let octets: Vec<u8> = x.iter().zip(mask).map(|(a, b)| a ^ b).collect();
            std::net::IpAddr::from(<[u8; 16]>::try_from(octets).ok()?)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether `datagram` is a Refresh request with LIFETIME 0: webrtc-rs releasing the
/// allocation (RFC 8656 §7.2), which it does when its PeerConnection closes.
fn is_release(datagram: &[u8]) -> bool {
    stun_type(datagram) == Some(REFRESH_REQUEST)
        && attribute(datagram, ATTR_LIFETIME) == Some(&[0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(kind: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut msg = kind.to_be_bytes().to_vec();
        msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
        msg.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        msg.extend_from_slice(&[9; 12]);
        msg.extend(body);
        msg
    }

    #[test]
    fn channel_data_is_padded_and_stun_goes_as_it_is() {
        for n in 0..9u16 {
            let mut datagram = vec![0x40, 0x01];
            datagram.extend_from_slice(&n.to_be_bytes());
            datagram.extend(std::iter::repeat_n(7u8, usize::from(n)));
            let framed = frame(&datagram).unwrap();
            assert_eq!(framed.len() % 4, 0, "{n} bytes of data");
            assert_eq!(&framed[..datagram.len()], &datagram[..]);
            assert!(framed[datagram.len()..].iter().all(|b| *b == 0));
            // What the server sends back splits the same way.
            let mut decoder = TurnStreamDecoder::new();
            decoder.extend_from_slice(&framed);
            assert_eq!(decoder.next_message().unwrap(), Some(framed.clone()));
        }
        let allocate = stun(ALLOCATE_REQUEST, &[(0x0019, &[17, 0, 0, 0])]);
        assert_eq!(frame(&allocate), Some(allocate.clone()));
    }

    #[test]
    fn what_is_not_turn_is_not_framed() {
        assert_eq!(frame(&[]), None);
        assert_eq!(frame(&[0x40, 0x01, 0x00]), None);
        // A TLS record, an RTP packet: the first two bits say neither STUN nor ChannelData.
        assert_eq!(frame(&[0x16, 0x03, 0x01, 0x00, 0x05]), None);
        assert_eq!(frame(&[0x80, 0x00, 0x00, 0x00]), None);
        assert_eq!(frame(&[0xc0, 0x00, 0x00, 0x00]), None);
        // Length fields that disagree with the datagram.
        let mut short_stun = stun(ALLOCATE_REQUEST, &[]);
        short_stun[3] = 8;
        assert_eq!(frame(&short_stun), None);
        assert_eq!(frame(&[0x40, 0x01, 0x00, 0x08, 1, 2]), None);
    }

    #[test]
    fn a_release_is_a_refresh_with_lifetime_zero() {
        let lifetime = |secs: u32| stun(REFRESH_REQUEST, &[(ATTR_LIFETIME, &secs.to_be_bytes())]);
        assert!(is_release(&lifetime(0)));
        assert!(!is_release(&lifetime(600)));
        // Other attributes before LIFETIME are skipped over, padding included.
        let with_nonce = stun(
            REFRESH_REQUEST,
            &[(0x0015, b"abcde"), (ATTR_LIFETIME, &[0, 0, 0, 0])],
        );
        assert!(is_release(&with_nonce));
        // A Refresh without LIFETIME keeps the allocation; other methods never release.
        assert!(!is_release(&stun(REFRESH_REQUEST, &[])));
        assert!(!is_release(&stun(
            ALLOCATE_REQUEST,
            &[(ATTR_LIFETIME, &[0, 0, 0, 0])]
        )));
        // A truncated attribute is not a release (nor a panic).
        let mut cut = lifetime(0);
        cut.truncate(cut.len() - 2);
        assert!(!is_release(&cut));
    }

    #[test]
    fn the_relayed_address_is_read_from_an_allocate_success() {
        // 203.0.113.1:49152 XORed with the cookie (RFC 8489 §14.2).
        let port = (49152u16 ^ 0x2112).to_be_bytes();
        let ip: Vec<u8> = [203, 0, 113, 1]
            .iter()
            .zip(MAGIC_COOKIE)
            .map(|(a, b)| a ^ b)
            .collect();
        let value = [&[0, 1][..], &port, &ip[..]].concat();
        let success = stun(
            ALLOCATE_SUCCESS,
            &[(0x0015, b"nonce"), (ATTR_XOR_RELAYED_ADDRESS, &value)],
        );
        assert_eq!(
            relayed_address(&success),
            Some("203.0.113.1:49152".parse().unwrap())
        );
        // IPv6: XORed with the cookie and the transaction id (all 9s in `stun`).
        let v6: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
        let mask: Vec<u8> = MAGIC_COOKIE.iter().copied().chain([9; 12]).collect();
        let x: Vec<u8> = v6.octets().iter().zip(&mask).map(|(a, b)| a ^ b).collect();
        let value = [&[0, 2][..], &port, &x].concat();
        let success = stun(ALLOCATE_SUCCESS, &[(ATTR_XOR_RELAYED_ADDRESS, &value)]);
        assert_eq!(
            relayed_address(&success),
            Some(SocketAddr::new(v6.into(), 49152))
        );
        // Not a success, no attribute, a cut attribute: nothing, and no panic.
        let request = stun(ALLOCATE_REQUEST, &[(ATTR_XOR_RELAYED_ADDRESS, &value)]);
        assert_eq!(relayed_address(&request), None);
        assert_eq!(relayed_address(&stun(ALLOCATE_SUCCESS, &[])), None);
        let cut = stun(ALLOCATE_SUCCESS, &[(ATTR_XOR_RELAYED_ADDRESS, &value[..6])]);
        assert_eq!(relayed_address(&cut), None);
    }

    #[test]
    fn only_allocate_requests_open_flows() {
        assert_eq!(
            stun_type(&stun(ALLOCATE_REQUEST, &[])),
            Some(ALLOCATE_REQUEST)
        );
        let mut no_cookie = stun(ALLOCATE_REQUEST, &[]);
        no_cookie[4] = 0;
        assert_eq!(stun_type(&no_cookie), None);
        assert_eq!(stun_type(&[0x40, 0x01, 0, 0]), None);
    }

    #[test]
    fn only_tcp_and_tls_turn_urls_are_bridged() {
        let bridged = |raw: &str| is_stream_turn(&Url::parse_url(raw).unwrap());
        assert!(bridged("turn:192.0.2.1:3478?transport=tcp"));
        assert!(bridged("turns:192.0.2.1:5349"));
        assert!(bridged("turns:turn.example.org:443?transport=tcp"));
        assert!(!bridged("turn:192.0.2.1:3478"));
        assert!(!bridged("turn:192.0.2.1:3478?transport=udp"));
        // TURN over DTLS: neither webrtc-rs nor the bridges speak it.
        assert!(!bridged("turns:192.0.2.1:5349?transport=udp"));
        assert!(!bridged("stun:192.0.2.1"));
        assert!(!bridged("stuns:192.0.2.1"));
    }
}

//! Test support for end-to-end tests: a real WebSocket client that speaks the protocol
//! through `mesh_proto`, meshes of real WebRTC nodes, and sealing and opening payloads as a
//! hand-made node does ([`seal`], [`open`]). The server on a port-0 loopback listener,
//! `/metrics` and waiting with a deadline come from `mesh_testkit` (re-exported here).
//!
//! Every wait has a deadline ([`DEADLINE`]); nothing sleeps for a fixed time.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mesh_proto::identity::{Keypair, PublicKey, register_message};
use mesh_proto::signal::Payload;
use mesh_proto::{ErrorCode, Frame, Limits, NodeId, PairKey, RoomName, Sealed};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use mesh_testkit::{DEADLINE, Metrics, TestServer, wait_until};

pub mod browser;

/// What a client read from the server.
#[derive(Debug)]
pub enum Received {
    /// A decoded frame.
    Frame(Frame),
    /// The server closed the connection (with its close frame, if any).
    Closed(Option<CloseFrame>),
}

/// A real WebSocket client of the bootstrap protocol.
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// This client's identity.
    pub key: Keypair,
    /// The challenge nonce the server sent.
    pub nonce: [u8; 32],
    /// The limits the server announced.
    pub limits: Limits,
    /// Pings received so far (answered automatically while reading).
    pub pings: usize,
}

impl Client {
    /// Connects with a fresh identity and reads the server's `Challenge`.
    pub async fn connect(url: &str) -> Self {
        match Self::try_connect(url).await {
            Ok(client) => client,
            Err(code) => panic!("connection refused with {code}"),
        }
    }

    /// Connects and reads the server's `Challenge`, or the error the server refused with.
    pub async fn try_connect(url: &str) -> Result<Self, ErrorCode> {
        let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("WebSocket handshake");
        Self::start(ws).await
    }

    /// Connects over a TCP connection whose receive buffer holds about `bytes` (the kernel
    /// rounds it up to its minimum), and reads the server's `Challenge`. Such a client
    /// stands for one on a slow or distant link: what the server sends it stays in the
    /// server's socket for a while before the client's window lets it through.
    pub async fn connect_with_receive_buffer(url: &str, bytes: u32) -> Self {
        let connect = async {
            let addr: SocketAddr = url
                .trim_start_matches("ws://")
                .split('/')
                .next()
                .and_then(|host| host.parse().ok())
                .expect("a ws://IP:PORT/... URL");
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4(),
                SocketAddr::V6(_) => TcpSocket::new_v6(),
            }
            .expect("a TCP socket");
            // Set before connecting, so the window scale is chosen for it.
            socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
            let stream = socket.connect(addr).await.expect("TCP connect");
            tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
                .await
                .expect("WebSocket handshake")
        };
        let (ws, _) = tokio::time::timeout(DEADLINE, connect)
            .await
            .expect("connect timed out");
        match Self::start(ws).await {
            Ok(client) => client,
            Err(code) => panic!("connection refused with {code}"),
        }
    }

    /// Reads the server's `Challenge` on a new connection, or the error it refused with.
    async fn start(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Result<Self, ErrorCode> {
        let key = Keypair::generate();
        let mut client = Self {
            ws,
            key,
            nonce: [0; 32],
            limits: zero_limits(),
            pings: 0,
        };
        match client.recv().await {
            Received::Frame(Frame::Challenge { nonce, limits }) => {
                client.nonce = nonce;
                client.limits = limits;
                Ok(client)
            }
            Received::Frame(Frame::Error { code, .. }) => Err(code),
            other => panic!("expected a Challenge first, got {other:?}"),
        }
    }

    /// Connects and registers in `room`; returns the client and its Welcome sample.
    pub async fn join(url: &str, room: &str) -> (Self, Vec<NodeId>) {
        let mut client = Self::connect(url).await;
        let peers = client.register(room).await;
        (client, peers)
    }

    /// This client's node id.
    pub fn id(&self) -> NodeId {
        self.key.node_id()
    }

    /// The correctly signed `Register` frame for `room`.
    pub fn register_frame(&self, room: &str) -> Frame {
        let room: RoomName = room.parse().expect("valid room name");
        let node_id = self.key.node_id();
        let signature = self
            .key
            .sign(&register_message(&self.nonce, &node_id, &room));
        Frame::Register {
            public_key: self.key.public(),
            node_id,
            room,
            signature,
        }
    }

    /// Registers in `room` and returns the Welcome sample; panics on anything else.
    pub async fn register(&mut self, room: &str) -> Vec<NodeId> {
        self.send(&self.register_frame(room)).await;
        match self.recv().await {
            Received::Frame(Frame::Welcome { node_id, peers, .. }) => {
                assert_eq!(node_id, self.id(), "Welcome echoes our id");
                peers
            }
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// Encodes and sends a frame.
    pub async fn send(&mut self, frame: &Frame) {
        let bytes = mesh_proto::encode(frame).expect("encode");
        self.send_raw(Message::Binary(bytes.into())).await;
    }

    /// Sends a raw WebSocket message.
    pub async fn send_raw(&mut self, msg: Message) {
        tokio::time::timeout(DEADLINE, self.ws.send(msg))
            .await
            .expect("send timed out")
            .expect("send failed");
    }

    /// Sends `messages` back to back and flushes once: they leave in as few TCP segments as
    /// the socket allows, so the server finds them all in its receive buffer at once.
    pub async fn send_at_once(&mut self, messages: impl IntoIterator<Item = Message>) {
        let send = async {
            for msg in messages {
                self.ws.feed(msg).await?;
            }
            self.ws.flush().await
        };
        tokio::time::timeout(DEADLINE, send)
            .await
            .expect("send timed out")
            .expect("send failed");
    }

    /// Sends a raw message, tolerating a connection the server already closed.
    pub async fn try_send_raw(&mut self, msg: Message) -> bool {
        matches!(
            tokio::time::timeout(DEADLINE, self.ws.send(msg)).await,
            Ok(Ok(()))
        )
    }

    /// The next frame or close, skipping pings and pongs; panics after [`DEADLINE`].
    pub async fn recv(&mut self) -> Received {
        tokio::time::timeout(DEADLINE, self.recv_inner())
            .await
            .expect("nothing received within the deadline")
    }

    async fn recv_inner(&mut self) -> Received {
        loop {
            match self.ws.next().await {
                None | Some(Err(_)) => return Received::Closed(None),
                Some(Ok(Message::Binary(bytes))) => {
                    let frame =
                        mesh_proto::decode(&bytes).expect("server sent an undecodable frame");
                    return Received::Frame(frame);
                }
                Some(Ok(Message::Close(frame))) => return Received::Closed(frame),
                Some(Ok(Message::Ping(_))) => self.pings += 1,
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next frame or close, skipping pings and pongs (and answering pings), however long
    /// it takes: for a task that passes a client's frames on to a test, whose own waits have
    /// deadlines.
    pub async fn recv_whenever(&mut self) -> Received {
        self.recv_inner().await
    }

    /// The next frame, which must be a frame (not a close).
    pub async fn recv_frame(&mut self) -> Frame {
        match self.recv().await {
            Received::Frame(frame) => frame,
            Received::Closed(close) => panic!("expected a frame, connection closed: {close:?}"),
        }
    }

    /// Expects an `Error` frame with `code`; returns its target.
    pub async fn expect_error(&mut self, code: ErrorCode) -> Option<NodeId> {
        match self.recv_frame().await {
            Frame::Error {
                code: got,
                target,
                message,
            } => {
                assert_eq!(got, code, "error message: {message}");
                target
            }
            other => panic!("expected error {code}, got {other:?}"),
        }
    }

    /// Expects an `Error` frame with `code` followed by the server's close; returns the
    /// WebSocket close code.
    pub async fn expect_fatal(&mut self, code: ErrorCode) -> u16 {
        self.expect_error(code).await;
        match self.recv().await {
            Received::Closed(Some(close)) => u16::from(close.code),
            other => panic!("expected a close after fatal {code}, got {other:?}"),
        }
    }

    /// Sends `payload` to `to` and waits for it on `receiver`, which must get it next.
    pub async fn unicast_to(&mut self, receiver: &mut Client, payload: &[u8]) {
        self.send(&Frame::Unicast {
            to: receiver.id(),
            payload: payload.to_vec(),
        })
        .await;
        match receiver.recv_frame().await {
            Frame::Transfer { from, payload: got } => {
                assert_eq!(from, self.id());
                assert_eq!(got, payload);
            }
            other => panic!("expected a Transfer, got {other:?}"),
        }
    }

    /// The room's peers the server lists for this client (up to `max`).
    pub async fn peers(&mut self, max: u16) -> Vec<NodeId> {
        self.send(&Frame::GetPeers { max }).await;
        match self.recv_frame().await {
            Frame::Peers { peers } => peers,
            other => panic!("expected Peers, got {other:?}"),
        }
    }

    /// Asks for the room's peers until `gone` is no longer among them; panics naming
    /// `what` after [`DEADLINE`].
    pub async fn wait_until_gone(&mut self, gone: NodeId, what: &str) {
        wait_until(what, DEADLINE, async || {
            let peers = self.peers(10).await;
            if peers.contains(&gone) {
                Err(format!("{gone} still among {} peers", peers.len()))
            } else {
                Ok(())
            }
        })
        .await;
    }

    /// Reads (answering pings) until `n` pings have arrived; panics after [`DEADLINE`].
    pub async fn wait_for_pings(&mut self, n: usize) {
        let wait = async {
            while self.pings < n {
                match self.ws.next().await {
                    Some(Ok(Message::Ping(_))) => self.pings += 1,
                    Some(Ok(Message::Pong(_))) => {}
                    other => panic!("expected only pings, got {other:?}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("pings did not arrive");
    }
}

/// `inner` sealed by `own`'s node for the node of `to` in `room`, with the nonce `(epoch,
/// seq)`: what a hand-made node sends as a unicast's payload (docs/protocol.md §9.7). The
/// caller never seals twice with one `(epoch, seq)`.
pub fn seal(
    own: &Keypair,
    room: &RoomName,
    to: &PublicKey,
    epoch: u64,
    seq: u64,
    inner: &Payload,
) -> Sealed {
    let (from, to_id) = (own.node_id(), NodeId::from_public_key(to));
    let pair = PairKey::derive(own, to, &from, &to_id, room).expect("a usable key");
    let plain = mesh_proto::encode_payload(inner).expect("the payload encodes");
    Sealed {
        key: own.public(),
        epoch,
        seq,
        ciphertext: pair.seal(epoch, seq, &plain),
    }
}

/// Opens `s` as the holder of `own` in `room` would: the inner payload, if it opens.
pub fn open(own: &Keypair, room: &RoomName, s: &Sealed) -> Option<Payload> {
    let pair = PairKey::derive(own, &s.key, &s.origin(), &own.node_id(), room).ok()?;
    let plain = pair.open(s.epoch, s.seq, &s.ciphertext).ok()?;
    mesh_proto::decode_payload(&plain).ok()
}

/// The sealed payload a `Route` or `Transfer` carries.
pub fn sealed_in(frame: &Frame) -> Option<Sealed> {
    let (Frame::Route { payload, .. } | Frame::Transfer { payload, .. }) = frame else {
        return None;
    };
    match mesh_proto::decode_payload(payload) {
        Ok(Payload::Sealed(s)) => Some(s),
        _ => None,
    }
}

fn zero_limits() -> Limits {
    Limits {
        max_frame_size: 0,
        max_payload_size: 0,
        frames_per_second: 0,
        frame_burst: 0,
        id_difficulty: 0,
    }
}

/// One real node of a test mesh, with its event stream.
#[derive(Debug)]
pub struct MeshNode {
    /// The node.
    pub node: mesh_node::Node,
    /// Its events.
    pub events: mesh_node::Events,
}

/// The overlay settings of the end-to-end meshes: small degrees and quick timers.
pub fn e2e_overlay() -> mesh_core::Config {
    mesh_core::Config::default()
        .with_target_degree(4)
        .with_min_degree(2)
        .with_max_degree(8)
        .with_tick_interval(Duration::from_millis(50))
        .with_announce_interval(Duration::from_millis(500))
        .with_session_timeout(Duration::from_secs(5))
        .with_retry_backoff(Duration::from_secs(1))
}

/// Joins one real WebRTC node (UDP on 127.0.0.1 only) through `server`.
pub async fn join_webrtc(server: &TestServer, overlay: mesh_core::Config) -> MeshNode {
    join_webrtc_with(
        mesh_node::Config::new(server.url().parse().expect("a ws:// URL")).with_overlay(overlay),
    )
    .await
}

/// Joins one real WebRTC node (UDP on 127.0.0.1 only) with `config`.
pub async fn join_webrtc_with(config: mesh_node::Config) -> MeshNode {
    let transport = mesh_node::transport::webrtc::Config::new()
        .with_bind_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    let node = mesh_node::Node::join(config, Keypair::generate(), transport)
        .await
        .expect("join");
    let events = node.events().expect("events");
    MeshNode { node, events }
}

/// `n` real WebRTC nodes joining one after another (each once the previous one has a
/// link), then waiting until every node has at least the minimum degree.
pub async fn webrtc_mesh(
    server: &TestServer,
    n: usize,
    overlay: mesh_core::Config,
) -> Vec<MeshNode> {
    let min = overlay.min_degree;
    let mut nodes: Vec<MeshNode> = Vec::with_capacity(n);
    for i in 0..n {
        let node = join_webrtc(server, overlay.clone()).await;
        if i > 0 {
            wait_for_degree(&node, 1, Duration::from_secs(30)).await;
        }
        nodes.push(node);
    }
    for node in &nodes {
        wait_for_degree(node, min, Duration::from_secs(60)).await;
    }
    nodes
}

/// Waits until `node` has at least `degree` neighbours.
pub async fn wait_for_degree(node: &MeshNode, degree: usize, deadline: Duration) {
    let what = format!("node {} reaching degree {degree}", node.node.id());
    wait_until(&what, deadline, async || {
        let neighbours = node.node.neighbours().await.expect("node running").len();
        if neighbours >= degree {
            Ok(())
        } else {
            Err(format!("{neighbours} neighbours"))
        }
    })
    .await;
}

/// Waits until no node's links changed for `quiet` (links opened and closed, summed over
/// the nodes, stayed the same), within `deadline`. The overlay keeps improving its shape
/// for a while after the nodes reach their degree; tests that count every message wait
/// for this, so that what they measure is a settled mesh.
pub async fn wait_for_settled(nodes: &[MeshNode], quiet: Duration, deadline: Duration) {
    let mut last = None;
    let mut since = tokio::time::Instant::now();
    wait_until("links to stop changing", deadline, async || {
        let mut changes = 0;
        for node in nodes {
            let stats = node.node.stats().await.expect("node running");
            changes += stats.overlay.links_up + stats.overlay.links_down;
        }
        if last != Some(changes) {
            last = Some(changes);
            since = tokio::time::Instant::now();
        }
        if since.elapsed() >= quiet {
            Ok(())
        } else {
            Err(format!(
                "{changes} link changes so far, the last {:?} ago",
                since.elapsed()
            ))
        }
    })
    .await;
}

/// Waits (with a deadline) for the next application message or broadcast on `node`,
/// skipping link events.
pub async fn next_message(node: &mut MeshNode) -> mesh_node::Event {
    let wait = async {
        loop {
            let event = node.events.recv().await.expect("node running");
            if matches!(
                event,
                mesh_node::Event::Message { .. } | mesh_node::Event::Broadcast { .. }
            ) {
                return event;
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("no message within the deadline")
}

/// Builds the workspace's binaries `names` (`bootstrap-server`, `mesh-node`) with the cargo
/// running this test, in the same profile (a no-op when they are fresh); their paths. For
/// tests that run the real binaries as processes (the NAT lab, the fleet of processes).
pub fn built_binaries<const N: usize>(names: [&str; N]) -> Result<[String; N], String> {
    let mut args = vec![
        "build".to_owned(),
        "--quiet".to_owned(),
        "--locked".to_owned(),
        "--offline".to_owned(),
    ];
    for name in names {
        let package = match name {
            "mesh-node" => "mesh-cli",
            other => other,
        };
        args.extend(["-p".to_owned(), package.to_owned()]);
    }
    if !cfg!(debug_assertions) {
        args.push("--release".to_owned());
    }
    let out = std::process::Command::new(env!("CARGO"))
        .args(&args)
        .output()
        .map_err(|e| format!("cargo {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "cargo {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // A test runs from target/<profile>/deps/; the binaries are in target/<profile>/.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or("cannot find the target directory")?;
    let mut paths = Vec::with_capacity(N);
    for name in names {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(format!("{path:?} is missing after `cargo build`"));
        }
        paths.push(path.display().to_string());
    }
    Ok(paths.try_into().expect("N paths"))
}

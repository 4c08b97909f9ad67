//! One WebSocket connection: a reader loop that owns the session state, and a writer task
//! that drains the connection's bounded outgoing queue and sends pings.
//!
//! The reader never awaits anything but the socket, its deadlines and its cancellation, and
//! in a fleet the registry's answer to its own `Register` and `GetPeers` (a sample drawn in
//! Redis, bounded by `Config::fleet_timeout`): frames to other peers and replies to its own
//! client are queued with `try_send`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use mesh_proto::{ErrorCode, Frame, NodeId, RoomName, identity, puzzle};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::{Instant, interval_at, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::Shared;
use crate::metrics::{Code, Kind, Metrics};
use crate::registry::{Delivery, Outbound, Registration};

/// After the server ends a connection with an `Error` frame, how long it goes on reading
/// (and discarding) what the client still sends, until the client answers the close or
/// hangs up (at most [`crate::Config::shutdown_grace`] if that is shorter).
///
/// Closing a TCP socket whose input is unread makes the kernel reset the connection, and a
/// reset discards whatever the server wrote that has not left yet: the `Error` frame and the
/// close frame, which a flooder, whose input is by definition unread, would never see.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// The most bytes (payloads plus a 6-byte minimum header per message) read and discarded
/// during [`LINGER`]; past it, the connection is closed at once.
pub(crate) const LINGER_BYTES: usize = 1 << 20;

/// How a session ended.
#[derive(Debug)]
enum End {
    /// The client closed the connection, or it broke.
    Closed,
    /// The server ends it with an error frame and a close frame.
    Fatal(ErrorCode, String),
}

/// Serves a connection that holds a connection permit.
pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>, permit: OwnedSemaphorePermit) {
    let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("session", session = id, node = tracing::field::Empty);
    async move {
        shared.metrics.connections.inc();
        let (sink, mut stream) = socket.split();
        let (tx, rx) = mpsc::channel(shared.config.outbound_queue);
        let (fin_tx, fin_rx) = oneshot::channel();
        let mut writer =
            tokio::spawn(write_loop(sink, rx, fin_rx, shared.clone()).in_current_span());

        let mut session = Session::new(id, shared.clone(), tx);
        let end = session.read_loop(&mut stream).await;
        let fatal = match &end {
            End::Closed => {
                debug!("connection closed");
                false
            }
            End::Fatal(code, why) => {
                info!(%code, "closing connection: {why}");
                true
            }
        };
        session.unregister();
        drop(session); // drops the queue's sender, so the writer drains and stops
        let _ = fin_tx.send(end);
        let grace = shared.config.shutdown_grace;
        let wait_for_writer = async {
            if timeout(grace, &mut writer).await.is_err() {
                debug!("writer stalled on a client that does not read; aborting it");
                writer.abort();
            }
        };
        // While the writer sends the Error frame and the close, read what the client still
        // sends, so that the socket is not closed with unread input (see LINGER).
        let linger = async {
            if fatal {
                linger(&mut stream, grace).await;
            }
        };
        tokio::join!(wait_for_writer, linger);
        shared.metrics.connections.dec();
        drop(permit);
    }
    .instrument(span)
    .await
}

/// Sends one error frame and closes: for connections refused before a session starts.
pub(crate) async fn refuse(mut socket: WebSocket, shared: Arc<Shared>, code: ErrorCode, why: &str) {
    debug!(%code, "refusing connection: {why}");
    let frame = error_frame(&shared.metrics, code, None, why);
    shared
        .metrics
        .frames_out
        .get_or_create(&Kind { kind: "error" })
        .inc();
    let _ = socket.send(Message::Binary(frame)).await;
    let _ = socket
        .send(Message::Close(Some(close_frame(code, why))))
        .await;
    // A client may have sent its first frames already: read them, so the close is not a
    // reset that discards the Error frame (see LINGER).
    linger(&mut socket, shared.config.shutdown_grace).await;
}

/// Reads and discards what the client sends until it answers the close (or hangs up),
/// for at most [`LINGER`] (or `grace` if shorter) and [`LINGER_BYTES`].
async fn linger<S>(stream: &mut S, grace: Duration)
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let discard = async {
        let mut bytes = 0;
        while let Some(Ok(msg)) = stream.next().await {
            bytes += 6 + match &msg {
                Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
                Message::Text(t) => t.len(),
                Message::Close(_) => 0,
            };
            if bytes > LINGER_BYTES {
                debug!("the client sent more than {LINGER_BYTES} bytes after the end; closing");
                return;
            }
        }
    };
    if timeout(LINGER.min(grace), discard).await.is_err() {
        debug!("the client did not answer the close within {LINGER:?}; closing");
    }
}

struct Session {
    id: u64,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Outbound>,
    nonce: [u8; 32],
    registered: Option<(RoomName, NodeId)>,
    /// Cancelled on shutdown (a child of the server's token) or when replaced.
    cancel: CancellationToken,
    limiter: DefaultDirectRateLimiter,
    started: Instant,
    last_seen: Instant,
}

impl Session {
    fn new(id: u64, shared: Arc<Shared>, tx: mpsc::Sender<Outbound>) -> Self {
        let config = &shared.config;
        let nonzero = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(nonzero(config.frames_per_second))
            .allow_burst(nonzero(config.frame_burst));
        let now = Instant::now();
        Self {
            id,
            cancel: shared.shutdown.child_token(),
            shared,
            tx,
            nonce: rand::random(),
            registered: None,
            limiter: RateLimiter::direct(quota),
            started: now,
            last_seen: now,
        }
    }

    async fn read_loop(&mut self, stream: &mut SplitStream<WebSocket>) -> End {
        let challenge = Frame::Challenge {
            nonce: self.nonce,
            limits: self.shared.config.limits(),
        };
        if let Err(end) = self.reply(&challenge) {
            return end;
        }
        // One timer for the connection's deadline, re-armed only when it fires: the deadline
        // moves with every received message, and re-arming per frame costs.
        let sleep = sleep_until(self.deadline());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    return if self.shared.shutdown.is_cancelled() {
                        End::Fatal(ErrorCode::SHUTTING_DOWN, "the server is shutting down".into())
                    } else {
                        End::Fatal(ErrorCode::REPLACED, "a new session proved the same key".into())
                    };
                }
                () = &mut sleep => {
                    let deadline = self.deadline();
                    if Instant::now() < deadline {
                        sleep.as_mut().reset(deadline);
                        continue;
                    }
                    let why = match self.registered {
                        None => "no registration within the register timeout",
                        Some(_) => "nothing received within the idle timeout",
                    };
                    return End::Fatal(ErrorCode::IDLE_TIMEOUT, why.into());
                }
                msg = stream.next() => {
                    let msg = match msg {
                        Some(Ok(msg)) => msg,
                        None => return End::Closed,
                        Some(Err(e)) => {
                            // Includes a message beyond the WebSocket layer's size limit.
                            info!("connection failed: {e}");
                            return End::Closed;
                        }
                    };
                    self.last_seen = Instant::now();
                    if let Err(end) = self.on_message(msg).await {
                        return end;
                    }
                }
            }
        }
    }

    /// When the connection times out if nothing more arrives.
    fn deadline(&self) -> Instant {
        match self.registered {
            None => self.started + self.shared.config.register_timeout,
            Some(_) => self.last_seen + self.shared.config.idle_timeout,
        }
    }

    async fn on_message(&mut self, msg: Message) -> Result<(), End> {
        let bytes = match msg {
            Message::Binary(bytes) => bytes,
            Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(End::Closed),
            Message::Text(_) => {
                return Err(fatal(
                    ErrorCode::MALFORMED,
                    "text messages are not frames: send binary",
                ));
            }
            Message::Ping(_) => {
                // Answered by the WebSocket layer; still counts against the rate limit.
                return self.rate_limit();
            }
        };
        self.rate_limit()?;
        self.shared.metrics.bytes_in.inc_by(bytes.len() as u64);
        let frame = mesh_proto::decode_with_limit(&bytes, self.shared.config.max_frame_size)
            .map_err(|e| {
                let code = match e {
                    mesh_proto::Error::FrameTooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
                    mesh_proto::Error::UnsupportedVersion { .. } => ErrorCode::UNSUPPORTED_VERSION,
                    _ => ErrorCode::MALFORMED,
                };
                End::Fatal(code, e.to_string())
            })?;
        self.shared
            .metrics
            .frames_in
            .get_or_create(&Kind { kind: frame.kind() })
            .inc();
        match (&self.registered, frame) {
            (
                None,
                Frame::Register {
                    public_key,
                    node_id,
                    room,
                    signature,
                },
            ) => self.register(public_key, node_id, room, signature).await,
            (Some(_), Frame::Register { .. }) => Err(fatal(
                ErrorCode::ALREADY_REGISTERED,
                "this connection is already registered",
            )),
            (Some((room, me)), Frame::Unicast { to, payload }) => {
                self.check_payload(payload.len())?;
                let (room, me) = (room.clone(), *me);
                self.unicast(&room, me, to, payload)
            }
            (Some((room, me)), Frame::Broadcast { payload }) => {
                self.check_payload(payload.len())?;
                let out = encode(&Frame::TransferBroadcast { from: *me, payload });
                let (queued, dropped) = self.shared.registry.broadcast(room, me, &out);
                debug!(queued, dropped, "broadcast");
                self.shared.metrics.dropped.inc_by(dropped as u64);
                Ok(())
            }
            (Some((room, me)), Frame::GetPeers { max }) => {
                let k = usize::from(max).min(self.shared.config.max_sample);
                let peers = self.shared.registry.sample(room, me, k).await;
                self.reply(&Frame::Peers { peers })
            }
            (None, Frame::Unicast { .. } | Frame::Broadcast { .. } | Frame::GetPeers { .. }) => {
                Err(fatal(
                    ErrorCode::NOT_REGISTERED,
                    "register before sending other frames",
                ))
            }
            (_, other) => Err(End::Fatal(
                ErrorCode::UNEXPECTED_FRAME,
                format!(
                    "{} frames are not valid from a bootstrap client",
                    other.kind()
                ),
            )),
        }
    }

    fn rate_limit(&self) -> Result<(), End> {
        self.limiter.check().map_err(|_| {
            End::Fatal(
                ErrorCode::RATE_LIMITED,
                format!(
                    "more than {} frames per second (burst {})",
                    self.shared.config.frames_per_second, self.shared.config.frame_burst
                ),
            )
        })
    }

    fn check_payload(&self, len: usize) -> Result<(), End> {
        let max = self.shared.config.max_payload_size;
        if len > max {
            return Err(End::Fatal(
                ErrorCode::PAYLOAD_TOO_LARGE,
                format!("payload of {len} bytes exceeds the limit of {max} bytes"),
            ));
        }
        Ok(())
    }

    async fn register(
        &mut self,
        public_key: identity::PublicKey,
        node_id: NodeId,
        room: RoomName,
        signature: identity::Signature,
    ) -> Result<(), End> {
        if !node_id.derives_from(&public_key) {
            return Err(fatal(
                ErrorCode::AUTH_FAILED,
                "node id does not derive from the public key",
            ));
        }
        let signed = identity::register_message(&self.nonce, &node_id, &room);
        if let Err(e) = public_key.verify(&signed, &signature) {
            return Err(End::Fatal(ErrorCode::AUTH_FAILED, e.to_string()));
        }
        let required = self.shared.config.id_difficulty;
        if !puzzle::meets(&node_id, required) {
            return Err(End::Fatal(
                ErrorCode::ID_BELOW_DIFFICULTY,
                format!(
                    "node id {node_id} has difficulty {}, this server requires {required}: \
                     make a key whose id meets it (mesh-node --id-difficulty {required})",
                    puzzle::difficulty(&node_id)
                ),
            ));
        }
        let registration = Registration {
            room: room.clone(),
            node_id,
            public_key,
            session: self.id,
            tx: self.tx.clone(),
            replaced: self.cancel.clone(),
        };
        let k = self.shared.config.welcome_sample;
        let peers = match self.shared.registry.register(registration, k).await {
            Ok(peers) => peers,
            Err(code) => {
                let why = match code {
                    ErrorCode::ROOM_FULL => format!("room {room} is full"),
                    _ => format!("node id {node_id} is registered with another key"),
                };
                return Err(End::Fatal(code, why));
            }
        };
        tracing::Span::current().record("node", tracing::field::display(node_id));
        info!(%room, "registered");
        self.shared.metrics.registrations.inc();
        self.registered = Some((room, node_id));
        self.reply(&Frame::Welcome {
            node_id,
            peers,
            stun_port: self.shared.stun_port,
        })
    }

    fn unicast(
        &self,
        room: &RoomName,
        me: NodeId,
        to: NodeId,
        payload: Vec<u8>,
    ) -> Result<(), End> {
        let out = Outbound {
            bytes: encode(&Frame::Transfer { from: me, payload }),
            kind: "transfer",
            received: Some(Instant::now()),
        };
        let code = match self.shared.registry.deliver(room, &me, &to, out) {
            Delivery::Queued | Delivery::Forwarded => return Ok(()),
            Delivery::UnknownPeer => ErrorCode::UNKNOWN_PEER,
            Delivery::Busy => {
                self.shared.metrics.dropped.inc();
                ErrorCode::TARGET_BUSY
            }
        };
        // A notice, not a reply: if the sender's own queue is full (it is outpacing its
        // recipient), the notice is dropped rather than the sender.
        let why = format!("unicast to {to} not delivered: {}", code.label());
        let bytes = error_frame(&self.shared.metrics, code, Some(to), &why);
        if self
            .tx
            .try_send(Outbound {
                bytes,
                kind: "error",
                received: None,
            })
            .is_err()
        {
            self.shared.metrics.notices_dropped.inc();
        }
        Ok(())
    }

    /// Queues a frame for this session's own client.
    fn reply(&self, frame: &Frame) -> Result<(), End> {
        self.send_bytes(encode(frame), frame.kind())
    }

    fn send_bytes(&self, bytes: Bytes, kind: &'static str) -> Result<(), End> {
        self.tx
            .try_send(Outbound {
                bytes,
                kind,
                received: None,
            })
            .map_err(|_| {
                warn!("outgoing queue full: the client does not read its frames; dropping it");
                End::Closed
            })
    }

    fn unregister(&self) {
        if let Some((room, node_id)) = &self.registered {
            self.shared.registry.unregister(room, node_id, self.id);
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    fin: oneshot::Receiver<End>,
    shared: Arc<Shared>,
) {
    let every = shared.config.ping_interval;
    let mut ping = interval_at(Instant::now() + every, every);
    // Arrival times of the unicasts in the batch being written, for the latency histogram.
    let mut unicasts: Vec<Instant> = Vec::new();
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break };
                // Write what is already queued (up to one queue's worth), then flush once:
                // one syscall per batch rather than per frame.
                let mut next = Some(out);
                let mut batch = 0;
                while let Some(out) = next {
                    let (len, kind) = (out.bytes.len() as u64, out.kind);
                    if sink.feed(Message::Binary(out.bytes)).await.is_err() {
                        return;
                    }
                    shared.metrics.bytes_out.inc_by(len);
                    shared.metrics.frames_out.get_or_create(&Kind { kind }).inc();
                    unicasts.extend(out.received);
                    batch += 1;
                    next = if batch < shared.config.outbound_queue { rx.try_recv().ok() } else { None };
                }
                if sink.flush().await.is_err() {
                    return;
                }
                for received in unicasts.drain(..) {
                    shared.metrics.unicast_latency.observe(received.elapsed().as_secs_f64());
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    }
    // Everything queued before the session ended has been written; now the ending.
    if let Ok(End::Fatal(code, why)) = fin.await {
        let frame = error_frame(&shared.metrics, code, None, &why);
        shared
            .metrics
            .frames_out
            .get_or_create(&Kind { kind: "error" })
            .inc();
        let _ = sink.send(Message::Binary(frame)).await;
        let _ = sink
            .send(Message::Close(Some(close_frame(code, &why))))
            .await;
    }
    let _ = sink.close().await;
}

fn fatal(code: ErrorCode, why: &str) -> End {
    End::Fatal(code, why.to_owned())
}

pub(crate) fn encode(frame: &Frame) -> Bytes {
    // Frames built here are within the server's limits (payloads were checked, samples
    // are capped), far below the protocol maximum, so encoding cannot fail.
    Bytes::from(mesh_proto::encode(frame).expect("server frames fit the protocol limit"))
}

/// Encodes an error frame and counts it.
pub(crate) fn error_frame(
    metrics: &Metrics,
    code: ErrorCode,
    target: Option<NodeId>,
    why: &str,
) -> Bytes {
    metrics
        .errors
        .get_or_create(&Code { code: code.label() })
        .inc();
    let message: String = why.chars().take(256).collect();
    encode(&Frame::Error {
        code,
        target,
        message,
    })
}

/// The WebSocket close frame that follows a fatal error code (RFC 6455 §7.4.1).
fn close_frame(code: ErrorCode, why: &str) -> CloseFrame {
    let ws_code = match code {
        ErrorCode::SHUTTING_DOWN | ErrorCode::IDLE_TIMEOUT => 1001,
        ErrorCode::MALFORMED | ErrorCode::UNSUPPORTED_VERSION | ErrorCode::UNEXPECTED_FRAME => 1002,
        ErrorCode::FRAME_TOO_LARGE | ErrorCode::PAYLOAD_TOO_LARGE => 1009,
        ErrorCode::SERVER_FULL => 1013,
        _ => 1008,
    };
    // A close reason is limited to 123 bytes.
    let mut reason = format!("{}: {why}", code.label());
    while reason.len() > 123 {
        reason.pop();
    }
    CloseFrame {
        code: ws_code,
        reason: reason.into(),
    }
}

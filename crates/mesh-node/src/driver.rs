//! The driver: one task that owns the overlay state machine and connects it to the world.
//! It selects over application commands, transport events, frames from the bootstrap
//! server (or the neighbour's door it rejoined through), frames from its own door, a
//! reconnection attempt of each, and the core's timer; after every input it drains the
//! core's outputs into the transport, the server, the door and the application.
//!
//! The core knows one server. Two WebSocket connections can stand behind it: the
//! **server** (the bootstrap server, or a neighbour's door after every link was lost) and,
//! when the node runs a door of its own, its **registration at that door**. Newcomers that
//! come through the door reach the core as any server transfer; the core's answers to them
//! go back through the door (the driver remembers who came that way), everything else to
//! the server.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use mesh_core::{Input, Output, Role};
use mesh_proto::identity::Keypair;
use mesh_proto::signal::SessionId;
use mesh_proto::{ErrorCode, Frame, NodeId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::Error;
use crate::error::Chain;
use crate::node::{Config, Event, LinkInfo, NodeStats};
use crate::server::{self, ServerLink};
use crate::transport::{SignalBody, Transport, TransportEvent};

/// What the [`crate::Node`] handle asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        to: NodeId,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Broadcast {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<usize, Error>>,
    },
    Connect {
        peer: NodeId,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Disconnect {
        peer: NodeId,
        reply: oneshot::Sender<()>,
    },
    Neighbours {
        reply: oneshot::Sender<Vec<NodeId>>,
    },
    Stats {
        reply: oneshot::Sender<NodeStats>,
    },
    Links {
        reply: oneshot::Sender<Vec<LinkInfo>>,
    },
    Raw {
        peer: NodeId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Leave,
}

pub(crate) struct Driver<T> {
    config: Config,
    seed: [u8; 32],
    core: mesh_core::Node,
    transport: T,
    transport_rx: mpsc::Receiver<TransportEvent>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    server: Option<ServerLink>,
    /// Registrations under way: at every door at once, or at the bootstrap server.
    connecting: JoinSet<(String, Result<ServerLink, Error>)>,
    /// Whether this round's doors were tried (the bootstrap server is next).
    doors_tried: bool,
    /// When to register again, and the pause after the next failed round.
    reconnect: Retry,
    /// When the node last registered (with the bootstrap server or a neighbour's door).
    registered_at: Instant,
    /// The registration at this node's own door, if it runs one.
    door: Option<ServerLink>,
    door_connecting: Option<JoinHandle<Result<ServerLink, Error>>>,
    /// When to register at the own door again, and the pause after the next failure.
    door_retry: Retry,
    /// Peers whose signaling came through the own door, and when it last did, the most
    /// recent first (at most [`DOOR_CLIENTS`], none older than [`DOOR_CLIENT_TTL`]): the
    /// core's frames to them go back that way.
    door_clients: VecDeque<(NodeId, Instant)>,
    stats: NodeStats,
    link_setup: LinkSetupTimes,
}

impl<T: Transport> Driver<T> {
    pub fn new(
        config: Config,
        key: Keypair,
        transport: T,
        transport_rx: mpsc::Receiver<TransportEvent>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        server: ServerLink,
    ) -> Result<Self, Error> {
        let now = Instant::now();
        let seed = key.to_seed();
        let core = mesh_core::Node::new(config.overlay.clone(), key, now, rand::random())?;
        let mut driver = Self {
            seed,
            core,
            transport,
            transport_rx,
            commands,
            events,
            server: None,
            connecting: JoinSet::new(),
            doors_tried: false,
            reconnect: Retry::new(now, config.reconnect_min),
            registered_at: now,
            door: None,
            door_connecting: None,
            door_retry: Retry::new(now, config.reconnect_min),
            door_clients: VecDeque::new(),
            stats: NodeStats::default(),
            link_setup: LinkSetupTimes::default(),
            config,
        };
        driver.server_up(server);
        Ok(driver)
    }

    pub async fn run(mut self) {
        info!("joined");
        loop {
            self.flush();
            self.maybe_leave_door();
            self.maybe_reconnect();
            self.maybe_register_at_door();
            let wake = tokio::time::Instant::from_std(self.next_wake());
            tokio::select! {
                command = self.commands.recv() => match command {
                    None | Some(Command::Leave) => break,
                    Some(command) => self.on_command(command),
                },
                event = self.transport_rx.recv() => {
                    // The transport holds a sender for as long as the driver lives.
                    if let Some(event) = event {
                        self.on_transport(event);
                    }
                }
                frame = recv_server(&mut self.server) => match frame {
                    Some(frame) => self.on_server_frame(frame),
                    None => self.server_down(),
                },
                Some(joined) = self.connecting.join_next(), if !self.connecting.is_empty() => {
                    match joined {
                        Ok((_, Ok(link))) => {
                            // The first registration wins; the others, under way or done,
                            // are dropped (a dropped set aborts its tasks). A neighbour's
                            // door that answers once the node is linked again is not needed.
                            self.connecting = JoinSet::new();
                            if link.url == self.config.bootstrap || self.core.wants_server() {
                                self.server_up(link);
                            }
                        }
                        Ok((url, Err(e))) => self.reconnect_failed(&url, e),
                        Err(e) => self.reconnect_failed("?", Error::Task(e)),
                    }
                }
                frame = recv_server(&mut self.door) => match frame {
                    Some(frame) => self.on_door_frame(frame),
                    None => self.door_down(),
                },
                result = join_connecting(&mut self.door_connecting) => {
                    self.door_connecting = None;
                    match result {
                        Ok(link) => self.door_up(link),
                        Err(e) => {
                            warn!("registering at our own door failed: {}", Chain(&e));
                            self.door_failed();
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    self.core.handle_input(Instant::now(), Input::Timeout);
                }
            }
        }
        info!("leaving");
        self.core.leave();
        self.flush();
        self.connecting.abort_all();
        if let Some(task) = self.door_connecting.take() {
            task.abort();
        }
        self.server = None;
        self.door = None;
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.core.poll_timeout();
        if self.wants_server() && self.connecting.is_empty() {
            wake = wake.min(self.reconnect.next);
        }
        if self.wants_door() && self.door_connecting.is_none() {
            wake = wake.min(self.door_retry.next);
        }
        wake
    }

    /// The node registers somewhere only while it has no server connection and needs one
    /// ([`mesh_core::Node::wants_server`]: no link, or stranded on an island).
    fn wants_server(&self) -> bool {
        self.server.is_none() && self.core.wants_server()
    }

    /// A neighbour's door is left once the node no longer needs a server (it is linked
    /// again: the door's owner keeps a place for the next one), or after [`DOOR_STAY`]
    /// without that: the bootstrap server is tried next, then, after the pause, every door
    /// again. A bootstrap connection is kept while it lasts.
    fn maybe_leave_door(&mut self) {
        let Some(link) = &self.server else { return };
        if link.url == self.config.bootstrap {
            return;
        }
        let (stayed, needed) = (self.registered_at.elapsed(), self.core.wants_server());
        if !needed || stayed >= DOOR_STAY {
            info!(url = %link.url, ?stayed, needed, "leaving a neighbour's door");
            if !needed {
                // The door did its job: the next time, a round starts without delay.
                self.reconnect.reset(self.config.reconnect_min);
            }
            self.server_down();
            if needed {
                self.doors_tried = true;
            }
        }
    }

    /// The doors a node that needs a server tries (all at once, before the bootstrap
    /// server): those it knows ([`mesh_core::Node::doors`]), but not its own, nor one of a
    /// peer it is linked to (that one cannot lead anywhere new).
    fn rejoin_doors(&self) -> Vec<String> {
        let own = self.config.overlay.door.as_ref().map(|url| url.as_str());
        let linked = self.core.neighbours();
        let mut urls: Vec<String> = Vec::new();
        let doors = self.core.doors().filter(|(peer, _)| !linked.contains(peer));
        for (_, url) in doors {
            let url = url.as_str();
            // Each server once: two registrations of one key at one server replace each
            // other (a node that came back with a new key, or a neighbour's claim, can
            // list a URL twice).
            if Some(url) != own && url != self.config.bootstrap && !urls.iter().any(|u| u == url) {
                urls.push(url.to_owned());
            }
        }
        urls
    }

    /// A round: every door the node knows at once (the first to register it wins), then,
    /// if none did, the bootstrap server; then a pause, twice as long each round.
    fn maybe_reconnect(&mut self) {
        if !self.wants_server()
            || !self.connecting.is_empty()
            || Instant::now() < self.reconnect.next
        {
            return;
        }
        let doors = if self.doors_tried {
            Vec::new()
        } else {
            self.rejoin_doors()
        };
        if doors.is_empty() {
            debug!(url = %self.config.bootstrap, "reconnecting to the bootstrap server");
            self.doors_tried = false;
            let url = self.config.bootstrap.clone();
            self.spawn_connect(url, self.config.bootstrap_timeout);
        } else {
            info!(
                doors = doors.len(),
                "rejoining through the doors of neighbours"
            );
            self.doors_tried = true;
            for url in doors {
                self.spawn_connect(url, self.config.door_timeout);
            }
        }
    }

    /// A registration attempt failed. Once the last of the round's doors failed, the
    /// bootstrap server is next, at once; once it failed, the next round after a pause.
    fn reconnect_failed(&mut self, url: &str, e: Error) {
        if url == self.config.bootstrap {
            debug!("reconnecting to the bootstrap server failed: {}", Chain(&e));
            self.reconnect
                .fail(Instant::now(), self.config.reconnect_max);
        } else {
            info!(%url, "rejoining through a neighbour's door failed: {}", Chain(&e));
        }
    }

    fn spawn_connect(&mut self, url: String, timeout: Duration) {
        let connect = self.connect(url.clone(), timeout);
        self.connecting.spawn(async move { (url, connect.await) });
    }

    /// Connecting and registering this node at `url`, as a task can own it.
    fn connect(
        &self,
        url: String,
        timeout: Duration,
    ) -> impl Future<Output = Result<ServerLink, Error>> + Send + 'static {
        let key = Keypair::from_seed(self.seed);
        let room = self.config.room.clone();
        async move { server::connect(&url, &room, &key, timeout).await }
    }

    /// Whether the node should register at its own door: it runs one, other than the
    /// bootstrap server it joined through, and is not registered there.
    fn wants_door(&self) -> bool {
        self.config
            .overlay
            .door
            .as_ref()
            .is_some_and(|url| url.as_str() != self.config.bootstrap)
            && self.door.is_none()
    }

    fn maybe_register_at_door(&mut self) {
        if !self.wants_door()
            || self.door_connecting.is_some()
            || Instant::now() < self.door_retry.next
        {
            return;
        }
        if let Some(url) = self.config.overlay.door.as_ref() {
            let connect = self.connect(url.to_string(), self.config.bootstrap_timeout);
            self.door_connecting = Some(tokio::spawn(connect));
        }
    }

    fn door_failed(&mut self) {
        self.door_retry
            .fail(Instant::now(), self.config.reconnect_max);
    }

    /// The core is not told: it never offers through its own door (nobody but newcomers
    /// is there), it only answers those who come through it.
    fn door_up(&mut self, link: ServerLink) {
        info!(url = %link.url, "registered at our own door");
        self.door = Some(link);
        self.door_retry.reset(self.config.reconnect_min);
    }

    fn door_down(&mut self) {
        if self.door.take().is_some() {
            warn!("the registration at our own door is gone");
            self.door_clients.clear();
            self.door_failed();
        }
    }

    fn on_door_frame(&mut self, frame: Frame) {
        let now = Instant::now();
        match frame {
            Frame::Transfer { from, payload } => {
                self.door_clients.retain(|(c, _)| *c != from);
                self.door_clients.push_front((from, now));
                self.door_clients.truncate(DOOR_CLIENTS);
                self.core
                    .handle_input(now, Input::ServerTransfer { from, payload });
            }
            Frame::Error {
                code,
                target,
                message,
            } => self.server_error("our own door", code, target, &message),
            other => debug!(kind = other.kind(), "ignoring a frame from our own door"),
        }
    }

    fn server_up(&mut self, link: ServerLink) {
        let peers = link.peers.clone();
        let stun = link
            .stun_port
            .and_then(|port| server::stun_url(&link.url, port));
        if stun != self.stats.server_stun {
            info!(stun = ?stun, "the bootstrap server's STUN responder");
        }
        self.transport.use_server_stun(stun.clone());
        self.stats.server_stun = stun;
        if link.url == self.config.bootstrap {
            self.reconnect.reset(self.config.reconnect_min);
        } else {
            info!(url = %link.url, "rejoined through a neighbour's door");
            self.stats.door_rejoins += 1;
        }
        self.server = Some(link);
        self.registered_at = Instant::now();
        self.doors_tried = false;
        self.stats.server_registrations += 1;
        self.emit(Event::ServerConnected);
        self.core
            .handle_input(Instant::now(), Input::ServerUp { peers });
    }

    fn server_down(&mut self) {
        if let Some(link) = self.server.take() {
            info!(url = %link.url, "the server connection is gone");
            self.core.handle_input(Instant::now(), Input::ServerDown);
            self.emit(Event::ServerDisconnected);
            self.reconnect.wait(Instant::now());
        }
    }

    fn on_server_frame(&mut self, frame: Frame) {
        let now = Instant::now();
        match frame {
            Frame::Transfer { from, payload } => {
                // It reaches us through the server now, not through our door.
                self.door_clients.retain(|(c, _)| *c != from);
                self.core
                    .handle_input(now, Input::ServerTransfer { from, payload });
            }
            Frame::Peers { peers } => self.core.handle_input(now, Input::ServerPeers { peers }),
            Frame::Error {
                code,
                target,
                message,
            } => self.server_error("the server", code, target, &message),
            other => debug!(
                kind = other.kind(),
                "ignoring a frame from the bootstrap server"
            ),
        }
    }

    /// An `Error` frame from the server or the own door (`from`, for the logs): a fatal one
    /// ends that connection (it closes next); any other goes to the core.
    fn server_error(&mut self, from: &str, code: ErrorCode, target: Option<NodeId>, message: &str) {
        if code.is_fatal() {
            warn!(%code, "{from} ends the session: {message}");
        } else {
            debug!(%code, ?target, "{from}: {message}");
            self.core
                .handle_input(Instant::now(), Input::ServerError { code, target });
        }
    }

    fn on_transport(&mut self, event: TransportEvent) {
        let now = Instant::now();
        let input = match event {
            TransportEvent::LocalSignal { session, signal } => Input::LocalSignal {
                session,
                signal: signal.into_kind(),
            },
            TransportEvent::LinkUp { session, .. } => {
                self.link_setup.up(session, now);
                Input::LinkUp { session }
            }
            TransportEvent::Data { session, bytes } => Input::LinkData { session, bytes },
            TransportEvent::Closed { session, reason } => {
                self.link_setup.closed(session);
                Input::LinkClosed { session, reason }
            }
        };
        self.core.handle_input(now, input);
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Send { to, data, reply } => {
                let _ = reply.send(self.core.send(now, to, data).map_err(Error::from));
            }
            Command::Broadcast { data, reply } => {
                let _ = reply.send(self.core.broadcast(now, data).map_err(Error::from));
            }
            Command::Connect { peer, reply } => {
                let _ = reply.send(self.core.connect(now, peer).map_err(Error::from));
            }
            Command::Disconnect { peer, reply } => {
                self.core.disconnect(now, peer);
                let _ = reply.send(());
            }
            Command::Neighbours { reply } => {
                let _ = reply.send(self.core.neighbours());
            }
            Command::Stats { reply } => {
                let mut stats = self.stats.clone();
                stats.overlay = self.core.stats().clone();
                stats.degree = self.core.neighbours().len();
                stats.server_connected = self.server.is_some();
                stats.door_registered = self.door.is_some();
                stats.link_setup = self.link_setup.recent.iter().copied().collect();
                let _ = reply.send(stats);
            }
            Command::Links { reply } => self.links(reply),
            Command::Raw { peer, bytes, reply } => {
                let result = match self.core.link_session(peer) {
                    Some(session) => self
                        .transport
                        .send(session, bytes.into())
                        .map_err(Error::from),
                    None => Err(Error::Core(mesh_core::Error::NoRoute(peer))),
                };
                let _ = reply.send(result);
            }
            Command::Leave => {}
        }
    }

    /// Answers [`Command::Links`]: the live links now, with the transport's candidate pairs
    /// read on a task of their own so that the driver never waits for them.
    fn links(&self, reply: oneshot::Sender<Vec<LinkInfo>>) {
        let links: Vec<(NodeId, SessionId)> = self
            .core
            .neighbours()
            .into_iter()
            .filter_map(|peer| Some((peer, self.core.link_session(peer)?)))
            .collect();
        let sessions: Vec<SessionId> = links.iter().map(|(_, session)| *session).collect();
        let pairs = self.transport.candidate_pairs(&sessions);
        tokio::spawn(async move {
            // A transport that cannot answer in time reports nothing rather than hang.
            let pairs = tokio::time::timeout(LINKS_TIMEOUT, pairs)
                .await
                .unwrap_or_default();
            let links = links
                .into_iter()
                .enumerate()
                .map(|(i, (peer, _))| LinkInfo {
                    peer,
                    candidate_pair: pairs.get(i).copied().flatten(),
                })
                .collect();
            let _ = reply.send(links);
        });
    }

    /// Carries out everything the core asked for.
    fn flush(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::SendServer(frame) => {
                    let now = Instant::now();
                    self.door_clients
                        .retain(|(_, at)| now.saturating_duration_since(*at) < DOOR_CLIENT_TTL);
                    let to_door_client = matches!(&frame, Frame::Unicast { to, .. }
                        if self.door_clients.iter().any(|(c, _)| c == to));
                    // To a peer that came through the own door: back that way; anything
                    // else to the server.
                    let link = match &self.door {
                        Some(door) if to_door_client => Some(door),
                        _ => self.server.as_ref(),
                    };
                    match link {
                        Some(link) => {
                            if link.tx.try_send(frame).is_err() {
                                warn!(url = %link.url, "server connection queue full: frame dropped");
                            }
                        }
                        None => debug!("no bootstrap connection: frame dropped"),
                    }
                }
                Output::SendLink { session, bytes } => {
                    if let Err(crate::transport::SendError::Full) =
                        self.transport.send(session, bytes)
                    {
                        self.stats.link_send_dropped += 1;
                    }
                }
                Output::OpenSession {
                    session,
                    peer,
                    role,
                } => {
                    if role == Role::Offerer {
                        self.link_setup.opened(session, Instant::now());
                    }
                    if let Err(e) = self.transport.open(session, peer, role) {
                        // No transport session, so no `Closed` event will end its timing.
                        self.link_setup.closed(session);
                        let reason = e.to_string();
                        self.core
                            .handle_input(Instant::now(), Input::LinkClosed { session, reason });
                    }
                }
                Output::RemoteSignal { session, signal } => {
                    if let Some(body) = SignalBody::from_kind(signal) {
                        self.transport.remote_signal(session, body);
                    }
                }
                Output::CloseSession { session } => self.transport.close(session),
                Output::Event(event) => {
                    let event = match event {
                        mesh_core::Event::LinkUp { peer } => {
                            info!(%peer, "link up");
                            Event::LinkUp { peer }
                        }
                        mesh_core::Event::LinkDown { peer, reason } => {
                            info!(%peer, "link down: {reason}");
                            Event::LinkDown { peer, reason }
                        }
                        mesh_core::Event::Message { from, data } => Event::Message { from, data },
                        mesh_core::Event::Broadcast { from, data } => {
                            Event::Broadcast { from, data }
                        }
                        mesh_core::Event::Unreachable { to, at } => {
                            debug!(%to, %at, "unicast reported unreachable");
                            Event::Unreachable { to, at }
                        }
                    };
                    self.emit(event);
                }
            }
        }
    }

    fn emit(&mut self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.stats.events_dropped += 1;
        }
    }
}

/// The longest a node stays registered at a neighbour's door while still needing a
/// server: two door sessions' worth (the core's default `session_timeout` is 15 s).
const DOOR_STAY: Duration = Duration::from_secs(30);

/// Peers remembered as having come through the own door ([`Driver::on_door_frame`]).
const DOOR_CLIENTS: usize = 64;

/// How long a peer counts as a door client after its last frame through the door: a door
/// session's worth (the core's default `session_timeout` is 15 s) twice over. After that
/// it has linked or given up, and frames to it go to the server.
const DOOR_CLIENT_TTL: Duration = Duration::from_secs(30);

/// A retried attempt: when it is due, and the pause it waits after the next failure
/// (doubling up to a maximum, back to the minimum on success).
#[derive(Debug)]
struct Retry {
    next: Instant,
    pause: Duration,
}

impl Retry {
    fn new(now: Instant, min: Duration) -> Self {
        Self {
            next: now,
            pause: min,
        }
    }

    /// Not before one pause from `now`.
    fn wait(&mut self, now: Instant) {
        self.next = now + self.pause;
    }

    /// Failed: not before one pause from `now`, and the pause after doubles (to `max`).
    fn fail(&mut self, now: Instant, max: Duration) {
        self.wait(now);
        self.pause = (self.pause * 2).min(max);
    }

    /// Succeeded: the pause goes back to `min`.
    fn reset(&mut self, min: Duration) {
        self.pause = min;
    }
}

/// How long [`crate::Node::links`] waits for the transport's candidate pairs.
const LINKS_TIMEOUT: Duration = Duration::from_secs(5);

/// How many link setup times a node keeps ([`NodeStats::link_setup`]), and how many
/// offerer sessions under way it times at once.
const LINK_SETUP_KEPT: usize = 256;

/// Setup times of the links this node opened as offerer: `OpenSession` → `LinkUp`.
#[derive(Debug, Default)]
struct LinkSetupTimes {
    /// Offerer sessions under way and when they were opened (at most [`LINK_SETUP_KEPT`];
    /// sessions beyond that are not timed).
    pending: HashMap<SessionId, Instant>,
    /// The last [`LINK_SETUP_KEPT`] setup times, oldest first.
    recent: VecDeque<Duration>,
}

impl LinkSetupTimes {
    fn opened(&mut self, session: SessionId, now: Instant) {
        if self.pending.len() < LINK_SETUP_KEPT {
            self.pending.insert(session, now);
        }
    }

    fn up(&mut self, session: SessionId, now: Instant) {
        if let Some(opened) = self.pending.remove(&session) {
            if self.recent.len() == LINK_SETUP_KEPT {
                self.recent.pop_front();
            }
            self.recent.push_back(now.saturating_duration_since(opened));
        }
    }

    fn closed(&mut self, session: SessionId) {
        self.pending.remove(&session);
    }
}

async fn recv_server(server: &mut Option<ServerLink>) -> Option<Frame> {
    match server {
        Some(link) => link.rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn join_connecting(
    task: &mut Option<JoinHandle<Result<ServerLink, Error>>>,
) -> Result<ServerLink, Error> {
    match task {
        Some(handle) => match handle.await {
            Ok(result) => result,
            Err(e) => Err(Error::Task(e)),
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_setup_times_offerer_sessions_and_keeps_the_last_ones() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut times = LinkSetupTimes::default();
        // An answerer's session is never opened here, so its LinkUp is not timed.
        times.up(SessionId(99), t0 + ms(5));
        assert!(times.recent.is_empty());
        times.opened(SessionId(1), t0);
        times.opened(SessionId(2), t0);
        times.closed(SessionId(2));
        times.up(SessionId(1), t0 + ms(7));
        times.up(SessionId(2), t0 + ms(9));
        assert_eq!(times.recent, [ms(7)]);
        assert!(times.pending.is_empty());
        // Bounded: pending sessions and kept times.
        for i in 0..2 * LINK_SETUP_KEPT as u64 {
            times.opened(SessionId(1000 + i), t0);
        }
        assert_eq!(times.pending.len(), LINK_SETUP_KEPT);
        for i in 0..2 * LINK_SETUP_KEPT as u64 {
            times.up(SessionId(1000 + i), t0 + ms(i));
        }
        assert_eq!(times.recent.len(), LINK_SETUP_KEPT);
        assert_eq!(times.recent.back(), Some(&ms(LINK_SETUP_KEPT as u64 - 1)));
    }
}

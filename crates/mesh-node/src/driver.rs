//! The driver: one task that owns the overlay state machine and connects it to the world.
//! It selects over application commands, transport events, frames from the servers the
//! node is registered at, registrations under way, and the core's timer; after every input
//! it drains the core's outputs into the transport, the servers and the application.
//!
//! It decides nothing: where to register and when, which server a frame goes to, when to
//! give up and leave are the core's (`mesh_core`'s rendezvous rules). The driver opens the
//! WebSocket connections the core asks for ([`Output::Register`]), closes those it is done
//! with ([`Output::Unregister`]) and reports what happened to them.

use std::collections::{HashMap, VecDeque};
use std::task::Poll;
use std::time::{Duration, Instant};

use mesh_core::{Input, Output, Role};
use mesh_proto::identity::Keypair;
use mesh_proto::signal::SessionId;
use mesh_proto::{Frame, NodeId, ServerUrl};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::Error;
use crate::error::Chain;
use crate::server::{self, ServerLink};
use crate::transport::{SignalBody, Transport, TransportEvent};
use crate::{Config, Event, LinkInfo, NodeStats};

/// What the [`crate::Node`] handle asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        /// Acknowledged and resent ([`mesh_core::Node::send_reliable`]).
        reliable: bool,
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
    /// Registered connections: the server the node signals through and its own door.
    servers: HashMap<ServerUrl, ServerLink>,
    /// Registrations under way, as the core asked.
    connecting: JoinSet<(ServerUrl, Result<ServerLink, Error>)>,
    attempts: HashMap<ServerUrl, AbortHandle>,
    /// What the core asked for while the node was joining, other than the join's own
    /// registrations: carried out first by [`Driver::flush`].
    early: VecDeque<Output>,
    stats: NodeStats,
    link_setup: LinkSetupTimes,
}

impl<T: Transport> Driver<T> {
    pub fn new(
        mut config: Config,
        key: Keypair,
        transport: T,
        transport_rx: mpsc::Receiver<TransportEvent>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
    ) -> Result<Self, Error> {
        let now = Instant::now();
        let seed = key.to_seed();
        if config.bootstraps.is_empty() {
            return Err(Error::Core(mesh_core::Error::InvalidConfig(
                "no bootstrap server: give at least one URL (mesh_node::Config::new)".into(),
            )));
        }
        config.overlay = config.overlay.with_bootstraps(config.bootstraps.clone());
        config.overlay.room = config.room.clone();
        if config.overlay.seal_epoch.is_none() {
            // Epochs must grow from run to run of one key: the wall clock, in microseconds
            // (a clock set back makes peers refuse this run's sealed payloads as replays
            // until they forget the key's last run: `key_ttl`).
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            config.overlay.seal_epoch = Some(micros);
        }
        let core = mesh_core::Node::new(config.overlay.clone(), key, now, rand::random())?;
        Ok(Self {
            seed,
            core,
            transport,
            transport_rx,
            commands,
            events,
            servers: HashMap::new(),
            connecting: JoinSet::new(),
            attempts: HashMap::new(),
            early: VecDeque::new(),
            stats: NodeStats::default(),
            link_setup: LinkSetupTimes::default(),
            config,
        })
    }

    /// The first registration, before the node runs, so that a wrong URL or a refusal is
    /// `Node::join`'s error: at the bootstrap server the core starts with
    /// ([`mesh_core::Node::joining_at`], picked by the node's id); should it fail, at the
    /// next one the core asks for at once, in turn, until one takes the node or the core's
    /// round ends (each was tried once): then the join fails with every attempt's error.
    pub async fn join(&mut self) -> Result<(), Error> {
        let mut errors = Vec::new();
        let mut next = self.core.joining_at().cloned();
        while let Some(server) = next.take() {
            let key = Keypair::from_seed(self.seed);
            let timeout = self.config.overlay.register_timeout;
            match server::connect(server.as_str(), &self.config.room, &key, timeout).await {
                Ok(link) => {
                    self.registered(server, link);
                    return Ok(());
                }
                Err(e) => {
                    info!(url = %server, "registering failed: {}", Chain(&e));
                    errors.push(e);
                    let input = Input::RegisterFailed { server };
                    self.core.handle_input(Instant::now(), input);
                }
            }
            while let Some(output) = self.core.poll_output() {
                match output {
                    Output::Register { server, .. }
                        if next.is_none() && self.config.bootstraps.contains(&server) =>
                    {
                        next = Some(server)
                    }
                    other => self.early.push_back(other),
                }
            }
        }
        Err(match errors.len() {
            1 => errors.remove(0),
            _ => Error::NoBootstrap(errors),
        })
    }

    pub async fn run(mut self) {
        info!("joined");
        loop {
            self.flush();
            let wake = tokio::time::Instant::from_std(self.core.poll_timeout());
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
                (server, frame) = recv_any(&mut self.servers) => match frame {
                    Some(frame) => self.on_server_frame(server, frame),
                    None => {
                        info!(url = %server, "the server connection is gone");
                        self.servers.remove(&server);
                        self.core.handle_input(Instant::now(), Input::ServerDown { server });
                    }
                },
                Some(joined) = self.connecting.join_next(), if !self.connecting.is_empty() => {
                    // An aborted attempt (the core gave up on it) reports nothing.
                    if let Ok((server, result)) = joined {
                        self.attempts.remove(&server);
                        match result {
                            Ok(link) => self.registered(server, link),
                            Err(e) => {
                                info!(url = %server, "registering failed: {}", Chain(&e));
                                let input = Input::RegisterFailed { server };
                                self.core.handle_input(Instant::now(), input);
                            }
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
        self.servers.clear();
    }

    /// A registration at `server` succeeded: the core decides whether it keeps it.
    fn registered(&mut self, server: ServerUrl, mut link: ServerLink) {
        if self.config.overlay.door.as_ref() == Some(&server) {
            info!(url = %server, "registered at our own door");
        }
        let peers = std::mem::take(&mut link.peers);
        self.servers.insert(server.clone(), link);
        self.core
            .handle_input(Instant::now(), Input::Registered { server, peers });
    }

    /// Connecting and registering this node at `server`, on a task of its own.
    fn connect(&mut self, server: ServerUrl, timeout: Duration) {
        let key = Keypair::from_seed(self.seed);
        let room = self.config.room.clone();
        let url = server.clone();
        let task = self.connecting.spawn(async move {
            let result = server::connect(url.as_str(), &room, &key, timeout).await;
            (url, result)
        });
        if let Some(old) = self.attempts.insert(server, task) {
            old.abort();
        }
    }

    /// The core is registered at `server`, the server it signals through from now on.
    fn server_connected(&mut self, server: &ServerUrl, door: bool) {
        let stun = self.servers.get(server).and_then(|link| {
            let port = link.stun_port?;
            server::stun_url(server.as_str(), port)
        });
        if stun != self.stats.server_stun {
            info!(stun = ?stun, "the server's STUN responder");
        }
        self.transport.use_server_stun(stun.clone());
        self.stats.server_stun = stun;
        if door {
            info!(url = %server, "rejoined through a neighbour's door");
            self.stats.door_rejoins += 1;
        }
        self.stats.server_registrations += 1;
    }

    fn on_server_frame(&mut self, server: ServerUrl, frame: Frame) {
        let url = server.clone();
        match self.core.handle_server_frame(Instant::now(), server, frame) {
            None => {}
            // A fatal one ends that connection (it closes next).
            Some(Frame::Error { code, message, .. }) => {
                warn!(%code, %url, "the server ends the session: {message}")
            }
            Some(other) => debug!(kind = other.kind(), %url, "ignoring a frame from a server"),
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
            Command::Send {
                reliable,
                to,
                data,
                reply,
            } => {
                let sent = if reliable {
                    self.core.send_reliable(now, to, data)
                } else {
                    self.core.send(now, to, data)
                };
                let _ = reply.send(sent.map_err(Error::from));
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
                stats.server_connected = self.core.server().is_some();
                stats.door_registered = self.core.own_door_registered();
                stats.link_setup = self.link_setup.recent.iter().copied().collect();
                stats.turn_streams = self.transport.turn_stream_stats();
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
        let links: Vec<(NodeId, SessionId, Option<mesh_core::Carrier>)> = self
            .core
            .neighbours()
            .into_iter()
            .filter_map(|peer| {
                let session = self.core.link_session(peer)?;
                Some((peer, session, self.core.link_carrier(peer)))
            })
            .collect();
        let sessions: Vec<SessionId> = links.iter().map(|(_, session, _)| *session).collect();
        let pairs = self.transport.candidate_pairs(&sessions);
        tokio::spawn(async move {
            // A transport that cannot answer in time reports nothing rather than hang.
            let pairs = tokio::time::timeout(LINKS_TIMEOUT, pairs)
                .await
                .unwrap_or_default();
            let links = links
                .into_iter()
                .enumerate()
                .map(|(i, (peer, _, carrier))| LinkInfo {
                    peer,
                    candidate_pair: pairs.get(i).copied().flatten(),
                    carrier,
                })
                .collect();
            let _ = reply.send(links);
        });
    }

    /// Carries out everything the core asked for.
    fn flush(&mut self) {
        while let Some(output) = self.early.pop_front().or_else(|| self.core.poll_output()) {
            match output {
                Output::SendServer { server, frame } => match self.servers.get(&server) {
                    Some(link) => {
                        if link.tx.try_send(frame).is_err() {
                            warn!(url = %server, "server connection queue full: frame dropped");
                        }
                    }
                    None => debug!(url = %server, "no connection to the server: frame dropped"),
                },
                Output::Register { server, timeout } => self.connect(server, timeout),
                Output::Unregister { server } => {
                    if let Some(attempt) = self.attempts.remove(&server) {
                        attempt.abort();
                    }
                    if self.servers.remove(&server).is_some() {
                        info!(url = %server, "leaving the server");
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
                    match &event {
                        Event::LinkUp { peer } => info!(%peer, "link up"),
                        Event::LinkDown { peer, reason } => info!(%peer, "link down: {reason}"),
                        Event::ServerConnected { server, door } => {
                            self.server_connected(server, *door)
                        }
                        Event::ServerDisconnected { server } => {
                            info!(url = %server, "no longer registered at the server")
                        }
                        Event::Unreachable { to, at } => {
                            debug!(%to, %at, "unicast reported unreachable")
                        }
                        _ => {}
                    }
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

/// The next frame from any registered connection, or `None` once that connection is
/// gone; pending while there is none.
async fn recv_any(servers: &mut HashMap<ServerUrl, ServerLink>) -> (ServerUrl, Option<Frame>) {
    std::future::poll_fn(|cx| {
        for (server, link) in servers.iter_mut() {
            if let Poll::Ready(frame) = link.rx.poll_recv(cx) {
                return Poll::Ready((server.clone(), frame));
            }
        }
        Poll::Pending
    })
    .await
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

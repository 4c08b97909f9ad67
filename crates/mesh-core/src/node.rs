//! The overlay state machine: one [`Node`], driven by [`Input`]s, producing [`Output`]s.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_proto::frame::MAX_NODES;
use mesh_proto::identity::Keypair;
use mesh_proto::signal::{Payload, RejectReason, SessionId, SignalKind};
use mesh_proto::{Door, DoorUrl, ErrorCode, Frame, MAX_DOORS, MAX_FRAME_SIZE, NodeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cache::ExpiringMap;
use crate::contacts::{BucketSet, ContactTable, bucket};

mod routing;
use routing::Routed;
mod signaling;
mod topology;
use crate::{Config, Error, Stats};

/// Bytes of a routed frame that are not the application's: version, tag, ids, ttl, the
/// payload's own tag and length prefixes.
const FRAME_OVERHEAD: usize = 64;

/// The largest application message [`Node::send`] and [`Node::broadcast`] accept.
pub const MAX_MESSAGE_SIZE: usize = MAX_FRAME_SIZE - FRAME_OVERHEAD;

/// How a signaling session's messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// Through the bootstrap server (`Unicast` → `Transfer`): only for a node's door session
    /// and for answering a newcomer that has no other way in.
    Server,
    /// Through the mesh (`Route` → … → `Transfer`).
    Mesh,
}

/// Which side of a session this node plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The initiator: creates the offer.
    Offerer,
    /// Answers the remote offer.
    Answerer,
}

/// Something that happened, for the node to react to.
#[derive(Debug)]
pub enum Input {
    /// Registered with the bootstrap server; `peers` is the Welcome sample.
    ServerUp {
        /// Other peers of the room.
        peers: Vec<NodeId>,
    },
    /// A `Peers` answer from the server.
    ServerPeers {
        /// Other peers of the room.
        peers: Vec<NodeId>,
    },
    /// A `Transfer` from the server.
    ServerTransfer {
        /// The registered sender.
        from: NodeId,
        /// Its payload (an encoded [`Payload`]).
        payload: Vec<u8>,
    },
    /// A non-fatal `Error` from the server (e.g. a unicast target that left).
    ServerError {
        /// The code.
        code: ErrorCode,
        /// The peer it is about.
        target: Option<NodeId>,
    },
    /// The server connection is gone.
    ServerDown,
    /// The transport opened the link of `session`.
    LinkUp {
        /// The session.
        session: SessionId,
    },
    /// One message received on the link of `session`: an encoded frame.
    LinkData {
        /// The session whose link received it.
        session: SessionId,
        /// The encoded frame.
        bytes: Bytes,
    },
    /// The transport ended `session` (failed, closed, or the remote left).
    LinkClosed {
        /// The session.
        session: SessionId,
        /// Why, for logs.
        reason: String,
    },
    /// The transport produced a signaling step for `session` (offer, answer, candidate,
    /// end of candidates) to carry to the remote side.
    LocalSignal {
        /// The session.
        session: SessionId,
        /// The step.
        signal: SignalKind,
    },
    /// The time returned by [`Node::poll_timeout`] has come.
    Timeout,
}

/// Something for the driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send this frame to the bootstrap server.
    SendServer(Frame),
    /// Send these bytes (one encoded frame) on the link of `session`.
    SendLink {
        /// The session whose link carries it.
        session: SessionId,
        /// The encoded frame.
        bytes: Bytes,
    },
    /// Start a transport session with `peer`.
    OpenSession {
        /// The new session.
        session: SessionId,
        /// The remote node.
        peer: NodeId,
        /// Our side.
        role: Role,
    },
    /// Apply a verified signaling step from the remote side of `session`.
    RemoteSignal {
        /// The session.
        session: SessionId,
        /// The step (never `Reject`: rejections are handled here).
        signal: SignalKind,
    },
    /// Close `session` and its link.
    CloseSession {
        /// The session.
        session: SessionId,
    },
    /// Tell the application.
    Event(Event),
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A link to `peer` is up.
    LinkUp {
        /// The new neighbour.
        peer: NodeId,
    },
    /// The link to `peer` is gone.
    LinkDown {
        /// The former neighbour.
        peer: NodeId,
        /// Why.
        reason: String,
    },
    /// A unicast message for this node.
    Message {
        /// The origin (as it claims; see `docs/protocol.md`).
        from: NodeId,
        /// The application bytes.
        data: Vec<u8>,
    },
    /// A broadcast, delivered once.
    Broadcast {
        /// The origin.
        from: NodeId,
        /// The application bytes.
        data: Vec<u8>,
    },
    /// A message this node sent to `to` was dropped on the way: the node `at` could find
    /// no next hop closer to `to` (or the TTL ran out there), and sending it again through
    /// other first neighbours (at most twice, within 2 s) did not get it through either.
    /// Best effort, like delivery: a drop can also go unreported.
    Unreachable {
        /// The destination.
        to: NodeId,
        /// The node that dropped it.
        at: NodeId,
    },
}

/// How many times an application message is sent again, each time through a first
/// neighbour it has not been through, after a relay reported a dead end (see
/// `Node::resend`). Measured (memory, 3,000 nodes, seeds 1–3): 956 of 960 delivered with
/// none, 958 with one, 960 with two; docs/benchmarks.md §8.3.
const RESENDS: usize = 2;
/// Application messages kept for a resend: at most this many, each at most
/// [`RESEND_MAX_SIZE`] bytes, for at most [`RESEND_WINDOW`].
const RESEND_CAPACITY: usize = 64;
/// The largest application payload kept for a resend (bigger ones are not resent): with
/// [`RESEND_CAPACITY`], at most 1 MiB kept.
const RESEND_MAX_SIZE: usize = 16 * 1024;
/// How long a sent message can still be resent.
const RESEND_WINDOW: Duration = Duration::from_secs(2);

/// Peers of the server's last sample kept as first choices for a door session (servers
/// send at most 16 on request; a `Welcome` may hold more).
const MAX_SERVER_PEERS: usize = 32;

/// An application message sent through the mesh, kept for a resend.
#[derive(Debug)]
struct SentApp {
    to: NodeId,
    payload: Vec<u8>,
    /// The first neighbours it went to, the first one first.
    first_hops: Vec<NodeId>,
    at: Instant,
}

/// What a neighbour says its neighbours are, and the distance buckets they are in (from
/// this node; computed once per announcement, since coverage is asked on every tick that
/// looks at the shape).
#[derive(Debug, Default)]
struct Announced {
    peers: Vec<NodeId>,
    buckets: BucketSet,
}

#[derive(Debug)]
struct Session {
    peer: NodeId,
    role: Role,
    carrier: Carrier,
    started: Instant,
    linked: bool,
    /// When the link last brought a frame (or came up): a link silent for
    /// [`Config::link_timeout`] is dropped.
    heard: Instant,
}

/// The overlay state machine of one node. It performs no I/O and never reads the clock:
/// feed it [`Input`]s with the current time, then drain [`Node::poll_output`] until it
/// returns `None`, and call [`Node::handle_input`] with [`Input::Timeout`] at
/// [`Node::poll_timeout`].
#[derive(Debug)]
pub struct Node {
    config: Config,
    key: Keypair,
    id: NodeId,
    rng: StdRng,
    server_up: bool,
    leaving: bool,
    sessions: BTreeMap<SessionId, Session>,
    /// Neighbour → the session of its link.
    links: BTreeMap<NodeId, SessionId>,
    /// Links being closed (`Frame::Closing` sent or received) → when to close them at the
    /// latest. They carry what still arrives, but nothing new, and count for nothing.
    draining: BTreeMap<NodeId, Instant>,
    /// What each neighbour says its neighbours are.
    neighbour_sets: BTreeMap<NodeId, Announced>,
    /// Peers we know of, linked or not, in k-buckets.
    contacts: ContactTable,
    /// Peers not to try again yet → until when.
    backoff: ExpiringMap<NodeId, Instant>,
    /// Origin → the neighbour its traffic last came through.
    routes: ExpiringMap<NodeId, NodeId>,
    /// Floods already delivered.
    dedup: ExpiringMap<(NodeId, u64), ()>,
    /// Offers already seen.
    replay: ExpiringMap<(NodeId, SessionId), ()>,
    /// Something that bears on the choice of neighbours changed since the last
    /// [`Node::rewire`]: a link, a neighbour set, a newly known peer, or the periodic
    /// refresh (backoffs end).
    topology_dirty: bool,
    next_lookup: Instant,
    /// The target of the lookup under way: only its answer is taken.
    lookup_target: Option<NodeId>,
    /// Answers still expected to the lookup under way (one per path it took).
    lookup_awaiting: usize,
    /// Whether an answer to the lookup under way brought a closer peer (or, for a hole,
    /// a peer in it).
    lookup_improved: bool,
    /// The bucket the lookup under way looks for someone in (`None`: our own id).
    lookup_hole: Option<u32>,
    /// Buckets a lookup found nobody in since the last lost link: not looked for again
    /// until then, so that lookups for our own id go on.
    empty_holes: BucketSet,
    /// The destination of the last frame this node relayed into a dead end: what the next
    /// lookup looks for.
    dead_end: Option<NodeId>,
    /// The last tick at the target degree, or since the last link came up, and
    /// `stats.sessions_failed` then (see [`Node::stranded`]).
    short_since: Option<(Instant, u64)>,
    /// The pause before the next lookup when the last one found nothing closer.
    lookup_pause: Duration,
    next_tick: Instant,
    next_announce: Instant,
    next_peer_request: Instant,
    /// Application messages sent through the mesh lately, oldest first, for a resend.
    sent_app: VecDeque<SentApp>,
    /// Doors neighbours announced as their own, the most recent first, at most
    /// `config.door_contacts`.
    doors: VecDeque<(NodeId, DoorUrl)>,
    /// Doors neighbours passed on from their own neighbours (none of `doors`), the most
    /// recent first, at most `config.door_contacts`.
    heard_doors: VecDeque<(NodeId, DoorUrl)>,
    /// The server's last sample (`Welcome` or `Peers`): peers registered where the node's
    /// door sessions go, so the first choice for one. Empty while the server is down.
    server_peers: Vec<NodeId>,
    /// Whether the last top-up found the node stranded ([`Node::stranded`]).
    stranded_now: bool,
    outputs: VecDeque<Output>,
    stats: Stats,
}

/// Puts `node`'s door first in `list`, without an older entry of it, keeping the `cap`
/// most recent.
fn push_recent(list: &mut VecDeque<(NodeId, DoorUrl)>, node: NodeId, url: DoorUrl, cap: usize) {
    list.retain(|(p, _)| *p != node);
    list.push_front((node, url));
    list.truncate(cap);
}

impl Node {
    /// A node with identity `key`, starting at `now`. `seed` seeds every random choice, so
    /// two nodes built with the same inputs behave identically.
    pub fn new(config: Config, key: Keypair, now: Instant, seed: u64) -> Result<Self, Error> {
        config.validate()?;
        let long = config.replay_ttl.max(config.route_ttl);
        let id = key.node_id();
        Ok(Self {
            id,
            key,
            rng: StdRng::seed_from_u64(seed),
            server_up: false,
            leaving: false,
            sessions: BTreeMap::new(),
            links: BTreeMap::new(),
            draining: BTreeMap::new(),
            neighbour_sets: BTreeMap::new(),
            contacts: ContactTable::new(id, config.bucket_size, long),
            backoff: ExpiringMap::new(
                128 * config.bucket_size,
                config.retry_backoff.max(config.full_backoff),
            ),
            routes: ExpiringMap::new(config.route_capacity, config.route_ttl),
            dedup: ExpiringMap::new(config.dedup_capacity, config.dedup_ttl),
            replay: ExpiringMap::new(config.replay_capacity, config.replay_ttl),
            topology_dirty: true,
            next_lookup: now,
            lookup_target: None,
            lookup_awaiting: 0,
            lookup_improved: false,
            lookup_hole: None,
            empty_holes: BucketSet::default(),
            dead_end: None,
            short_since: None,
            lookup_pause: config.announce_interval,
            next_tick: now,
            next_announce: now + config.announce_interval,
            next_peer_request: now,
            sent_app: VecDeque::new(),
            doors: VecDeque::new(),
            heard_doors: VecDeque::new(),
            server_peers: Vec::new(),
            stranded_now: false,
            outputs: VecDeque::new(),
            stats: Stats::default(),
            config,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current neighbours (not those whose link is being closed).
    pub fn neighbours(&self) -> Vec<NodeId> {
        self.live_links().map(|(p, _)| *p).collect()
    }

    /// The links that count: all but those being closed.
    fn live_links(&self) -> impl Iterator<Item = (&NodeId, &SessionId)> {
        self.links
            .iter()
            .filter(|(p, _)| !self.draining.contains_key(p))
    }

    /// The session of the link to `peer`, unless it is being closed.
    fn live_link(&self, peer: &NodeId) -> Option<SessionId> {
        self.links
            .get(peer)
            .copied()
            .filter(|_| !self.draining.contains_key(peer))
    }

    /// How many links count towards the degree.
    fn degree(&self) -> usize {
        self.live_links().count()
    }

    /// The session of the link to neighbour `peer`.
    pub fn link_session(&self, peer: NodeId) -> Option<SessionId> {
        self.links.get(&peer).copied()
    }

    /// The doors this node knows ([`Frame::Doors`]): first those neighbours (current and
    /// former) announced as their own, the most recently announced first, then those they
    /// passed on, likewise; at most [`Config::door_contacts`] of each. Where to register
    /// when the node needs a server, before the bootstrap server.
    pub fn doors(&self) -> impl Iterator<Item = (NodeId, &DoorUrl)> {
        self.doors
            .iter()
            .chain(&self.heard_doors)
            .map(|(peer, url)| (*peer, url))
    }

    /// Whether the node needs a server to signal through: it has no link, or it is
    /// stranded (below the target degree, sessions through the mesh failing and no new
    /// link for a whole `session_timeout`: its links may lead only to an island). A driver
    /// with no server connection registers somewhere (a neighbour's door, the bootstrap
    /// server) while this holds.
    pub fn wants_server(&self) -> bool {
        self.degree() == 0 || self.stranded_now
    }

    /// How many peers the contact table holds (at most 128 × `bucket_size`).
    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    /// Counters of what this node did.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next thing for the driver to do, if any. Drain it after every input or call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to feed [`Input::Timeout`] next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.leaving {
            return;
        }
        match input {
            Input::ServerUp { peers } => {
                self.server_up = true;
                self.on_server_peers(peers, now);
            }
            Input::ServerPeers { peers } => self.on_server_peers(peers, now),
            Input::ServerTransfer { from, payload } => {
                self.deliver_payload(from, &payload, Carrier::Server, now)
            }
            Input::ServerError { code, target } => self.on_server_error(code, target, now),
            Input::ServerDown => {
                self.server_up = false;
                self.server_peers.clear();
            }
            Input::LinkUp { session } => self.on_link_up(session, now),
            Input::LinkData { session, bytes } => self.on_link_data(session, &bytes, now),
            Input::LinkClosed { session, reason } => self.on_link_closed(session, reason, now),
            Input::LocalSignal { session, signal } => self.send_signal(session, signal, now),
            Input::Timeout => {
                if now >= self.next_tick {
                    self.next_tick = now + self.config.tick_interval;
                    self.on_tick(now);
                }
            }
        }
    }

    /// Sends `data` to `to` through the mesh.
    pub fn send(&mut self, now: Instant, to: NodeId, data: Vec<u8>) -> Result<(), Error> {
        check_size(data.len())?;
        if to == self.id {
            return Err(Error::SelfAddressed);
        }
        let payload = mesh_proto::encode_payload(&Payload::App(data))?;
        let (first_hop, payload) = self.route_out_avoiding(to, payload, &[], now)?;
        self.stats.messages_sent += 1;
        if first_hop != to && payload.len() <= RESEND_MAX_SIZE {
            while self.sent_app.len() >= RESEND_CAPACITY
                || self
                    .sent_app
                    .front()
                    .is_some_and(|m| now.saturating_duration_since(m.at) > RESEND_WINDOW)
            {
                self.sent_app.pop_front();
            }
            self.sent_app.push_back(SentApp {
                to,
                payload,
                first_hops: vec![first_hop],
                at: now,
            });
        }
        Ok(())
    }

    /// Floods `data` to every node of the mesh; returns how many neighbours it went to.
    pub fn broadcast(&mut self, now: Instant, data: Vec<u8>) -> Result<usize, Error> {
        check_size(data.len())?;
        let payload = mesh_proto::encode_payload(&Payload::App(data))?;
        let id = self.rng.random::<u64>();
        self.dedup.insert((self.id, id), (), now);
        let frame = Frame::Flood {
            from: self.id,
            id,
            ttl: self.config.ttl,
            payload,
        };
        let sent = self.send_to_links(&frame, None)?;
        self.stats.broadcasts_sent += 1;
        Ok(sent)
    }

    /// Opens a direct link to `peer` (signaled through the mesh, or the server if this node
    /// has no link yet).
    pub fn connect(&mut self, now: Instant, peer: NodeId) -> Result<(), Error> {
        if peer == self.id {
            return Err(Error::SelfAddressed);
        }
        if self.links.contains_key(&peer) || self.session_with(peer).is_some() {
            return Ok(());
        }
        let carrier = if self.links.is_empty() {
            Carrier::Server
        } else {
            Carrier::Mesh
        };
        if carrier == Carrier::Server && !self.server_up {
            return Err(Error::NoRoute(peer));
        }
        self.learn_peers(&[peer], now);
        self.start_session(peer, carrier, now);
        Ok(())
    }

    /// Closes the link to `peer` (if any); the node will not pick `peer` again for a while.
    pub fn disconnect(&mut self, now: Instant, peer: NodeId) {
        if let Some(session) = self.links.get(&peer).copied() {
            self.drop_link(session, "closed locally".to_owned(), now);
        }
    }

    /// Closes every session and link; the node does nothing more.
    pub fn leave(&mut self) {
        for session in self.sessions.keys().copied().collect::<Vec<_>>() {
            self.outputs.push_back(Output::CloseSession { session });
        }
        self.sessions.clear();
        self.links.clear();
        self.leaving = true;
    }

    // --- inputs ---------------------------------------------------------------------

    fn on_tick(&mut self, now: Instant) {
        // Sessions that did not link in time.
        let timeout = self.config.session_timeout;
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.linked && now.saturating_duration_since(s.started) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for session in expired {
            if let Some(s) = self.sessions.remove(&session) {
                self.stats.sessions_failed += 1;
                self.back_off(s.peer, now);
                self.outputs.push_back(Output::CloseSession { session });
            }
        }
        self.close_drained(now);
        self.drop_silent(now);
        self.top_up(now);
        self.lookup(now);
        if self.degree() >= self.config.target_degree && self.topology_dirty {
            self.topology_dirty = !self.rewire(now);
            self.shed_redundant(now);
        }
        if now >= self.next_announce {
            self.next_announce = now + self.config.announce_interval;
            self.topology_dirty = true;
            self.announce();
        }
    }

    /// Drops the links that brought nothing for `link_timeout`: every node announces on
    /// each link every `announce_interval`, so such a neighbour is gone, whether or not its
    /// transport noticed (measured: 300 WebRTC nodes, a fifth killed at once: 7 links to
    /// killed nodes were still open 15 s later).
    fn drop_silent(&mut self, now: Instant) {
        let timeout = self.config.link_timeout;
        let silent: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.linked && now.saturating_duration_since(s.heard) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for session in silent {
            self.stats.links_timed_out += 1;
            self.drop_link(session, format!("nothing heard for {timeout:?}"), now);
        }
    }

    fn on_server_error(&mut self, code: ErrorCode, target: Option<NodeId>, now: Instant) {
        // A door session to a peer that left the server cannot complete.
        let Some(target) = target else { return };
        if code != ErrorCode::UNKNOWN_PEER {
            return;
        }
        self.contacts.remove(&target);
        self.fail_pending(target, Carrier::Server, now);
    }

    /// Ends the sessions with `peer` on `carrier` that are not linked yet: they cannot
    /// complete (the peer is gone, or unreachable that way).
    fn fail_pending(&mut self, peer: NodeId, carrier: Carrier, now: Instant) {
        let failed: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.peer == peer && !s.linked && s.carrier == carrier)
            .map(|(id, _)| *id)
            .collect();
        for session in failed {
            self.sessions.remove(&session);
            self.stats.sessions_failed += 1;
            self.back_off(peer, now);
            self.outputs.push_back(Output::CloseSession { session });
        }
    }

    fn on_link_up(&mut self, session: SessionId, now: Instant) {
        let Some(s) = self.sessions.get(&session) else {
            // A session we already gave up on.
            self.outputs.push_back(Output::CloseSession { session });
            return;
        };
        if s.linked {
            return;
        }
        let peer = s.peer;
        if let Some(&existing) = self.links.get(&peer) {
            // Both sides opened a link at once: keep the lower session id (both agree).
            if existing.0 < session.0 {
                self.sessions.remove(&session);
                self.outputs.push_back(Output::CloseSession { session });
                return;
            }
            self.sessions.remove(&existing);
            self.links.remove(&peer);
            self.outputs
                .push_back(Output::CloseSession { session: existing });
        } else if self.degree() >= self.config.max_degree {
            self.sessions.remove(&session);
            self.outputs.push_back(Output::CloseSession { session });
            return;
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.linked = true;
            s.heard = now;
        }
        self.links.insert(peer, session);
        self.short_since = None;
        self.topology_dirty = true;
        self.backoff.remove(&peer);
        self.stats.links_up += 1;
        self.outputs
            .push_back(Output::Event(Event::LinkUp { peer }));
        self.send_frame(session, &Frame::GetNeighbours);
        let doors = self.doors_to_announce(peer);
        if !doors.is_empty() {
            self.send_frame(session, &Frame::Doors { doors });
        }
        self.announce();
    }

    fn on_link_closed(&mut self, session: SessionId, reason: String, now: Instant) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        if s.linked {
            self.drop_link(session, reason, now);
        } else {
            let (peer, role, carrier) = (s.peer, s.role, s.carrier);
            self.sessions.remove(&session);
            self.stats.sessions_failed += 1;
            self.back_off(peer, now);
            if role == Role::Answerer {
                // Do not leave the offerer waiting for its timeout.
                let reject = SignalKind::Reject(RejectReason::FAILED);
                self.send_signal_to(peer, carrier, session, reject, now);
            }
        }
    }

    fn on_link_data(&mut self, session: SessionId, bytes: &[u8], now: Instant) {
        let Some(peer) = self
            .sessions
            .get_mut(&session)
            .filter(|s| s.linked)
            .map(|s| {
                s.heard = now;
                s.peer
            })
        else {
            return;
        };
        let frame = match mesh_proto::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                self.stats.malformed_frames += 1;
                self.drop_link(session, format!("malformed frame: {e}"), now);
                return;
            }
        };
        match frame {
            Frame::Route {
                to,
                from,
                ttl,
                steering,
                payload,
            } => {
                self.learn_route(from, peer, now);
                if to == self.id {
                    self.deliver_payload(from, &payload, Carrier::Mesh, now);
                } else {
                    let route = Routed {
                        to,
                        from,
                        ttl,
                        steering,
                        payload,
                    };
                    self.forward(route, peer, now);
                }
            }
            Frame::Transfer { from, payload } => {
                self.learn_route(from, peer, now);
                self.deliver_payload(from, &payload, Carrier::Mesh, now);
            }
            Frame::Flood {
                from,
                id,
                ttl,
                payload,
            } => {
                if self.dedup.contains(&(from, id), now) {
                    self.stats.flood_duplicates += 1;
                    return;
                }
                self.dedup.insert((from, id), (), now);
                self.learn_route(from, peer, now);
                if ttl > 0 {
                    let frame = Frame::Flood {
                        from,
                        id,
                        ttl: ttl - 1,
                        payload: payload.clone(),
                    };
                    if let Ok(n) = self.send_to_links(&frame, Some(peer)) {
                        self.stats.frames_relayed += n as u64;
                    }
                }
                match mesh_proto::decode_payload(&payload) {
                    Ok(Payload::App(data)) => {
                        self.stats.broadcasts_delivered += 1;
                        self.outputs
                            .push_back(Output::Event(Event::Broadcast { from, data }));
                    }
                    _ => self.stats.bad_payloads += 1,
                }
            }
            Frame::GetNeighbours => {
                let peers: Vec<NodeId> = self
                    .live_links()
                    .map(|(n, _)| *n)
                    .filter(|n| *n != peer)
                    .collect();
                self.send_frame(session, &Frame::Neighbours { peers });
            }
            Frame::Neighbours { mut peers } => {
                peers.retain(|p| *p != self.id);
                peers.truncate(2 * self.config.max_degree);
                self.learn_peers(&peers, now);
                self.set_neighbours(peer, peers);
                self.topology_dirty = true;
            }
            Frame::FindNodes { target } => {
                let peers = self.closest_known(target, peer, MAX_NODES, now);
                self.send_frame(session, &Frame::Nodes { target, peers });
            }
            Frame::Nodes { .. } => {
                // Only the answer to a `FindNodes` is taken, and this node sends none (it
                // looks up through the mesh): taken unasked, any neighbour could fill the
                // contact table with made-up ids, at any rate, and send us after them.
                self.stats.bad_payloads += 1;
            }
            Frame::Lookup { target, from, ttl } => {
                self.learn_route(from, peer, now);
                self.on_lookup(target, from, ttl, now);
            }
            Frame::Closing => self.on_closing(peer, now),
            Frame::Doors { doors } => self.on_doors(peer, doors),
            other => {
                self.stats.malformed_frames += 1;
                let reason = format!("{} frames are not valid on a link", other.kind());
                self.drop_link(session, reason, now);
            }
        }
    }

    /// What a new neighbour `peer` is told of doors: our own first, then those our
    /// neighbours announced as theirs (not `peer`'s own), at most [`MAX_DOORS`]. Doors we
    /// only heard of are not passed on: a door travels at most two links from its node.
    fn doors_to_announce(&self, peer: NodeId) -> Vec<Door> {
        let own = self.config.door.iter().map(|url| (self.id, url));
        own.chain(self.doors.iter().map(|(node, url)| (*node, url)))
            .filter(|(node, _)| *node != peer)
            .take(MAX_DOORS)
            .map(|(node, url)| Door {
                node,
                url: url.clone(),
            })
            .collect()
    }

    /// `peer`'s `Doors`: its own door is kept first among the announced ones, the others
    /// first among those heard of, in the order `peer` gave them; an older entry of the
    /// same node goes, and beyond [`Config::door_contacts`] the least recent one.
    fn on_doors(&mut self, peer: NodeId, mut doors: Vec<Door>) {
        let cap = self.config.door_contacts;
        doors.truncate(MAX_DOORS);
        for Door { node, url } in doors.into_iter().rev() {
            if node == self.id {
                continue;
            }
            let known = self.doors.iter().any(|(p, _)| *p == node);
            self.heard_doors.retain(|(p, _)| *p != node);
            if node == peer {
                push_recent(&mut self.doors, node, url, cap);
            } else if !known {
                push_recent(&mut self.heard_doors, node, url, cap);
            }
        }
    }

    // --- links ----------------------------------------------------------------------

    /// Below the target degree, with sessions through the mesh failing and no new link for
    /// a whole session timeout (see [`Node::top_up`]).
    fn stranded(&mut self, now: Instant) -> bool {
        let failed = self.stats.sessions_failed;
        if self.degree() >= self.config.target_degree {
            self.short_since = Some((now, failed));
            return false;
        }
        let (since, failed_before) = *self.short_since.get_or_insert((now, failed));
        now.saturating_duration_since(since) >= self.config.session_timeout
            && failed > failed_before
    }

    fn top_up(&mut self, now: Instant) {
        let offering = |s: &&Session| !s.linked && s.role == Role::Offerer;
        let mut pending = self.sessions.values().filter(offering).count();
        let stranded = self.stranded(now);
        self.stranded_now = stranded;
        if self.degree() == 0 || (stranded && self.server_up) {
            // The door: one server-signaled session at a time, with no link at all, or
            // stranded: below the target degree, with sessions through the mesh failing
            // and none linking for a whole session timeout. The links we have may lead
            // only to an island (survivors of a mass failure linked only to each other,
            // passing around contacts none of them can reach); the server can reach them.
            // Stranded, the node goes on topping up through the mesh as well: the server
            // may be a neighbour's door, which reaches only a few.
            let via_server = self
                .sessions
                .values()
                .filter(offering)
                .any(|s| s.carrier == Carrier::Server);
            let alone = self.degree() == 0;
            if self.server_up && !via_server && (!alone || pending == 0) {
                match self.server_candidate(now) {
                    Some(peer) => {
                        self.start_session(peer, Carrier::Server, now);
                        pending += 1;
                    }
                    None => self.request_peers_from_server(now),
                }
            }
            if alone {
                return;
            }
        }
        let want = self
            .config
            .target_degree
            .saturating_sub(self.degree() + pending);
        let slots = self.config.max_pending_sessions.saturating_sub(pending);
        for _ in 0..want.min(slots) {
            match self.pick_candidate(true, now) {
                Some(peer) => self.start_session(peer, Carrier::Mesh, now),
                None => {
                    self.request_neighbours(now);
                    break;
                }
            }
        }
    }

    /// A sample of the server's peers (`Welcome`, `Peers`): known from now on, and the
    /// first choice for a door session.
    fn on_server_peers(&mut self, mut peers: Vec<NodeId>, now: Instant) {
        peers.retain(|p| *p != self.id);
        peers.truncate(MAX_SERVER_PEERS);
        self.learn_peers(&peers, now);
        self.server_peers = peers;
        self.top_up(now);
    }

    /// The eligible peer of the server's last sample closest to us: registered at the
    /// server, so a door session with it can go through (a contact may have gone).
    fn server_candidate(&self, now: Instant) -> Option<NodeId> {
        self.server_peers
            .iter()
            .filter(|p| self.is_eligible(p, now))
            .min_by_key(|p| self.id.distance(p))
            .copied()
    }

    fn request_peers_from_server(&mut self, now: Instant) {
        if self.server_up && now >= self.next_peer_request {
            self.next_peer_request = now + self.config.retry_backoff;
            self.outputs
                .push_back(Output::SendServer(Frame::GetPeers { max: 16 }));
        }
    }

    fn request_neighbours(&mut self, now: Instant) {
        if now < self.next_peer_request {
            return;
        }
        self.next_peer_request = now + self.config.announce_interval;
        let sessions: Vec<SessionId> = self.links.values().copied().collect();
        for session in sessions {
            self.send_frame(session, &Frame::GetNeighbours);
        }
    }

    /// Tells every neighbour our neighbour set.
    fn announce(&mut self) {
        let all: Vec<(NodeId, SessionId)> = self.live_links().map(|(p, s)| (*p, *s)).collect();
        for (peer, session) in &all {
            let peers = all.iter().map(|(p, _)| *p).filter(|p| p != peer).collect();
            self.send_frame(*session, &Frame::Neighbours { peers });
        }
    }

    fn drop_link(&mut self, session: SessionId, reason: String, now: Instant) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        let peer = s.peer;
        self.outputs.push_back(Output::CloseSession { session });
        // Whatever ended the link (a bad frame, a close, a departure), do not re-link at once.
        self.back_off(peer, now);
        if self.links.get(&peer) == Some(&session) {
            self.draining.remove(&peer);
            self.topology_dirty = true;
            self.links.remove(&peer);
            self.neighbour_sets.remove(&peer);
            self.routes.retain(|_, via| *via != peer);
            self.stats.links_down += 1;
            // Repair: hear of the peers now closest to us through the mesh soon.
            self.next_lookup = self.next_lookup.min(now);
            self.lookup_pause = self.config.announce_interval;
            self.empty_holes = BucketSet::default();
            self.outputs
                .push_back(Output::Event(Event::LinkDown { peer, reason }));
            self.announce();
            self.top_up(now);
        }
    }

    /// Records what `neighbour` says its neighbours are (our own id left out).
    fn set_neighbours(&mut self, neighbour: NodeId, peers: Vec<NodeId>) {
        let buckets = peers
            .iter()
            .filter(|p| **p != self.id)
            .map(|p| bucket(&self.id, p))
            .collect();
        self.neighbour_sets
            .insert(neighbour, Announced { peers, buckets });
    }

    /// Not to try `peer` again for `retry_backoff`.
    pub(super) fn back_off(&mut self, peer: NodeId, now: Instant) {
        self.back_off_for(peer, self.config.retry_backoff, now);
    }

    /// Not to try `peer` again for `pause` (at most the backoff table's ttl).
    pub(super) fn back_off_for(&mut self, peer: NodeId, pause: Duration, now: Instant) {
        self.backoff.insert(peer, now + pause, now);
    }

    /// Whether `peer` is not to be tried yet.
    pub(super) fn backing_off(&self, peer: &NodeId, now: Instant) -> bool {
        self.backoff
            .get(peer, now)
            .is_some_and(|until| now < *until)
    }

    fn send_frame(&mut self, session: SessionId, frame: &Frame) {
        match mesh_proto::encode(frame) {
            Ok(bytes) => self.outputs.push_back(Output::SendLink {
                session,
                bytes: bytes.into(),
            }),
            Err(_) => self.stats.bad_payloads += 1,
        }
    }

    /// Sends `frame` on every link but `except`'s; returns how many.
    fn send_to_links(&mut self, frame: &Frame, except: Option<NodeId>) -> Result<usize, Error> {
        let bytes = Bytes::from(mesh_proto::encode(frame)?);
        let mut n = 0;
        for (peer, session) in &self.links {
            if Some(*peer) != except && !self.draining.contains_key(peer) {
                n += 1;
                self.outputs.push_back(Output::SendLink {
                    session: *session,
                    bytes: bytes.clone(),
                });
            }
        }
        Ok(n)
    }
}

fn check_size(len: usize) -> Result<(), Error> {
    if len > MAX_MESSAGE_SIZE {
        return Err(Error::TooLarge {
            size: len,
            max: MAX_MESSAGE_SIZE,
        });
    }
    Ok(())
}

//! The overlay state machine: one [`Node`], driven by [`Input`]s, producing [`Output`]s.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use web_time::Instant;

use bytes::Bytes;
use mesh_proto::frame::MAX_NODES;
use mesh_proto::identity::Keypair;
use mesh_proto::signal::{Payload, RejectReason, SessionId, SignalKind};
use mesh_proto::{Door, ErrorCode, Frame, MAX_FRAME_SIZE, NodeId, NodeRecord, ServerUrl, authored};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::budget::{self, Spend};
use crate::cache::ExpiringMap;
use crate::contacts::{BucketSet, ContactTable, bucket};
use crate::links::Links;
use crate::lookups::Lookups;
use crate::rendezvous::{Change, Rendezvous};
use crate::{acks, doors, keys, resend, sessions};

mod routing;
use routing::Routed;
mod signaling;
mod topology;
mod trust;
use crate::{Carrier, Config, Error, Event, Input, LinkDownReason, Output, Role, Stats};
pub(crate) use trust::KEY_WAIT;

/// Bytes of a routed frame that are not the application's: version, tag, ids, ttl, the
/// payload's own tag and length prefixes, and the seal (origin key, epoch, seq, tag).
const FRAME_OVERHEAD: usize = 160;

/// The largest application message [`Node::send`] and [`Node::broadcast`] accept.
pub const MAX_MESSAGE_SIZE: usize = MAX_FRAME_SIZE - FRAME_OVERHEAD;

/// Peers of the server's last sample kept as first choices for a entry session (servers
/// send at most 16 on request; a `Welcome` may hold more).
const MAX_SERVER_PEERS: usize = 32;

/// Peers remembered as gone, at most (the oldest forgotten first), and for how long.
const GONE_CAPACITY: usize = 1024;
const GONE_TTL: Duration = Duration::from_secs(60);

/// What a neighbour says its neighbours are, and the distance buckets they are in (from
/// this node; computed once per announcement, since coverage is asked on every tick that
/// looks at the shape).
#[derive(Debug, Default)]
struct Announced {
    peers: Vec<NodeId>,
    buckets: BucketSet,
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
    /// Where the node is registered, and when to register elsewhere.
    rendezvous: Rendezvous,
    leaving: bool,
    sessions: sessions::Table,
    /// The links, one per neighbour, and those being closed.
    links: Links,
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
    /// Lookups through the mesh: when, the one under way, buckets found empty.
    lookups: Lookups,
    /// The last tick at the target degree, or since the last link came up, and
    /// `stats.sessions_failed` then (see [`Node::stranded`]).
    short_since: Option<(Instant, u64)>,
    next_tick: Instant,
    next_announce: Instant,
    next_peer_request: Instant,
    /// Application messages sent through the mesh lately, for a resend.
    sent_app: resend::Window,
    /// The doors neighbours told of.
    doors: doors::Book,
    /// The server's last sample (`Welcome` or `Peers`): peers registered where the node's
    /// entry sessions go, so the first choice for one. Empty while no server is up.
    server_peers: Vec<NodeId>,
    /// Whether the last top-up found the node stranded ([`Node::stranded`]).
    stranded_now: bool,
    /// With no link: from when another entry session may start beside those under way
    /// ([`Config::entry_stagger`] after the last one started, or at once after one
    /// failed). `None` once linked, or when the last time it came found nothing to start.
    next_entry: Option<Instant>,
    /// Peers of the server's sample an entry session was started with since the node last
    /// had a link: tried after the untried ones, so that a newcomer whose closest sampled
    /// peers cannot link does not go back to them (their backoff ends before a session
    /// with them times out) while others are left. Only peers of the current sample.
    entry_tried: Vec<NodeId>,
    /// Keys of other nodes, pair keys, replay windows, this run's seal sequence.
    keys: keys::Book,
    /// This node's own record, signed once.
    record: NodeRecord,
    /// What each neighbour may still make this node do.
    budgets: HashMap<NodeId, budget::Link>,
    /// What each flood origin may still make this node forward.
    origin_floods: ExpiringMap<NodeId, budget::Bucket>,
    /// The node's budgets for floods of strangers ([`Config::stranger_budget`]), one
    /// per [`budget::FloodKind`].
    strangers: [budget::Bucket; 2],
    /// Outgoing sessions this node may still start.
    session_bucket: budget::Bucket,
    /// Unreachable reports this node may still send.
    report_bucket: budget::Bucket,
    /// Floods this node sends in place of routed unicasts (`Config::flood_fallback`, and
    /// the answers by flood to what came by flood).
    fallback_bucket: budget::Bucket,
    /// Sealed signals sent lately: seq → the peer (an unreachable report counts only for
    /// one of these or a message in `sent_app`).
    signal_seqs: ExpiringMap<u64, NodeId>,
    /// Destinations whose key is being looked up, with what waits for it.
    awaiting: trust::AwaitingKeys,
    /// The proofs ([`mesh_proto::Sealed::proof`]) of what this node sealed lately, by seq:
    /// an unreachable report must quote the one of the payload it is about.
    sent_proofs: ExpiringMap<u64, [u8; 8]>,
    /// Reliable unicasts under way, until acknowledged.
    reliable: acks::Pending,
    /// Peers a session failed with because the nodes around their id did not know them
    /// (an unreachable report): gone, most likely. Records others pass on do not make
    /// them contacts again; their own traffic, a neighbour's announcement or the server
    /// does.
    gone: ExpiringMap<NodeId, ()>,
    /// When the node was made: nothing it knows was seen before. Stands for `now - 30 s`
    /// while that is before the clock's origin (a browser's `performance.now()` starts with
    /// the page).
    created: Instant,
    outputs: VecDeque<Output>,
    stats: Stats,
}

impl Node {
    /// A node with identity `key`, starting at `now`. `seed` seeds every random choice, so
    /// two nodes built with the same inputs behave identically.
    pub fn new(config: Config, key: Keypair, now: Instant, seed: u64) -> Result<Self, Error> {
        config.validate()?;
        let long = config.replay_ttl.max(config.route_ttl);
        let id = key.node_id();
        if !mesh_proto::puzzle::meets(&id, config.id_difficulty) {
            return Err(Error::IdBelowDifficulty {
                id,
                has: mesh_proto::puzzle::difficulty(&id),
                required: config.id_difficulty,
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        // Without an epoch from the driver, one from the seed (a simulation: one run).
        let epoch = config
            .seal_epoch
            .unwrap_or_else(|| rng.random::<u64>() >> 1);
        let record = NodeRecord::sign(&key, &config.room);
        let keys = keys::Book::new(
            &key,
            config.room.clone(),
            epoch,
            config.key_capacity,
            config.key_ttl,
        );
        Ok(Self {
            id,
            key,
            rng,
            rendezvous: Rendezvous::new(&config, &id, now),
            leaving: false,
            sessions: sessions::Table::new(config.max_sessions),
            links: Links::default(),
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
            lookups: Lookups::new(&config, now),
            short_since: None,
            next_tick: now,
            next_announce: now + config.announce_interval,
            next_peer_request: now,
            sent_app: resend::Window::default(),
            doors: doors::Book::new(config.door_contacts),
            server_peers: Vec::new(),
            stranded_now: false,
            next_entry: None,
            entry_tried: Vec::new(),
            created: now,
            record,
            keys,
            budgets: HashMap::new(),
            origin_floods: ExpiringMap::new(config.key_capacity, budget::ORIGIN_MEMORY),
            strangers: [
                budget::Bucket::new(config.stranger_budget, now),
                budget::Bucket::new(config.stranger_budget, now),
            ],
            session_bucket: budget::Bucket::new(config.session_budget, now),
            report_bucket: budget::Bucket::new(routing::REPORT_BUDGET, now),
            fallback_bucket: budget::Bucket::new(trust::FALLBACK_BUDGET, now),
            signal_seqs: ExpiringMap::new(4 * config.max_sessions, config.session_timeout),
            awaiting: trust::AwaitingKeys::new(),
            reliable: acks::Pending::default(),
            gone: ExpiringMap::new(GONE_CAPACITY, GONE_TTL),
            sent_proofs: ExpiringMap::new(2048, Duration::from_secs(30)),
            outputs: VecDeque::new(),
            stats: Stats::default(),
            config,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's own record: its key, signed by it for its room.
    pub fn record(&self) -> NodeRecord {
        self.record
    }

    /// The current neighbours (not those whose link is being closed).
    pub fn neighbours(&self) -> Vec<NodeId> {
        self.live_links().map(|(p, _)| *p).collect()
    }

    /// The links that count: all but those being closed.
    fn live_links(&self) -> impl Iterator<Item = (&NodeId, &SessionId)> {
        self.links.live()
    }

    /// The session of the link to `peer`, unless it is being closed.
    fn live_link(&self, peer: &NodeId) -> Option<SessionId> {
        self.links.live_link(peer)
    }

    /// How many links count towards the degree.
    fn degree(&self) -> usize {
        self.links.degree()
    }

    /// The session of the link to neighbour `peer`.
    pub fn link_session(&self, peer: NodeId) -> Option<SessionId> {
        self.links.get(&peer)
    }

    /// How the session of the link to `peer` was signaled: through a server (an entry
    /// session, or a newcomer's) or through the mesh. `None` without a link to `peer`.
    pub fn link_carrier(&self, peer: NodeId) -> Option<crate::Carrier> {
        let session = self.links.get(&peer)?;
        self.sessions.get(&session).map(|s| s.carrier)
    }

    /// The doors this node knows ([`Frame::Doors`]): first those neighbours (current and
    /// former) announced as their own, the most recently announced first, then those they
    /// passed on, likewise; at most [`Config::door_contacts`] of each. Where to register
    /// when the node needs a server, before the bootstrap server.
    pub fn doors(&self) -> impl Iterator<Item = (NodeId, &ServerUrl)> {
        self.doors.iter()
    }

    /// The server the node signals through (the bootstrap server or a neighbour's door),
    /// if it is registered at one.
    pub fn server(&self) -> Option<&ServerUrl> {
        self.rendezvous.attached()
    }

    /// The bootstrap server a registration of this node is under way at, if any. At the
    /// start it is [`Config::first_bootstrap`] for this node's id: the one its driver
    /// registers it at before it starts (should that fail, the driver reports
    /// [`Input::RegisterFailed`] and the node asks for the next one in turn with
    /// [`Output::Register`]).
    pub fn joining_at(&self) -> Option<&ServerUrl> {
        self.rendezvous.joining_at()
    }

    /// Whether the node is registered at its own door ([`Config::door`]).
    pub fn own_door_registered(&self) -> bool {
        self.rendezvous.own_door_registered()
    }

    /// Whether a server carries this node's signaling now.
    fn server_up(&self) -> bool {
        self.rendezvous.attached().is_some()
    }

    /// Whether the node needs a server to signal through: it has no link, or it is
    /// stranded (below the target degree, sessions through the mesh failing and no new
    /// link for a whole `session_timeout`: its links may lead only to an island). While
    /// this holds and it is registered nowhere, the node asks its driver to register it
    /// somewhere (a neighbour's door, the bootstrap server: [`Output::Register`]).
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

    /// When to feed [`Input::Timeout`] next: the next tick ([`Config::tick_interval`]), or
    /// sooner for the rendezvous or for the next entry session ([`Config::entry_stagger`]).
    pub fn poll_timeout(&self) -> Instant {
        let rendezvous = self.rendezvous.next_wake(&self.config, self.wants_server());
        [rendezvous, self.entry_wake()]
            .into_iter()
            .flatten()
            .fold(self.next_tick, Instant::min)
    }

    /// Feeds one frame from a registered server connection (after its `Welcome`): a
    /// `Transfer`, a `Peers` answer of the server this node signals through, or a non-fatal
    /// `Error` become the matching [`Input`]. Returns the frames that are not for the core,
    /// for the driver to log: a fatal `Error` (the server closes that connection next), and
    /// any frame a server has no reason to send once registered, or `Peers` from another.
    pub fn handle_server_frame(
        &mut self,
        now: Instant,
        server: ServerUrl,
        frame: Frame,
    ) -> Option<Frame> {
        let input = match frame {
            Frame::Transfer { from, payload } => Input::ServerTransfer {
                server,
                from,
                payload,
            },
            Frame::Peers { peers } if self.server() == Some(&server) => {
                Input::ServerPeers { peers }
            }
            Frame::Error { code, target, .. } if !code.is_fatal() => {
                Input::ServerError { code, target }
            }
            other => return Some(other),
        };
        self.handle_input(now, input);
        None
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.leaving {
            return;
        }
        match input {
            Input::Registered { server, peers } => {
                let wants = self.wants_server();
                let change =
                    self.rendezvous
                        .registered(&self.config, now, server, wants, &mut self.outputs);
                if let Some(change) = change {
                    self.on_rendezvous(change);
                    self.on_server_peers(peers, now);
                }
            }
            Input::RegisterFailed { server } => {
                self.rendezvous.register_failed(&self.config, now, &server)
            }
            Input::ServerPeers { peers } => self.on_server_peers(peers, now),
            Input::ServerTransfer {
                server,
                from,
                payload,
            } => {
                self.rendezvous.heard_from(&server, from, now);
                self.deliver_payload(from, &payload, Carrier::Server, now)
            }
            Input::ServerError { code, target } => self.on_server_error(code, target, now),
            Input::ServerDown { server } => {
                if let Some(change) = self.rendezvous.server_down(&self.config, now, &server) {
                    self.on_rendezvous(change);
                }
            }
            Input::LinkUp { session } => self.on_link_up(session, now),
            Input::LinkData { session, bytes } => self.on_link_data(session, &bytes, now),
            Input::LinkClosed { session, reason } => {
                self.on_link_closed(session, LinkDownReason::Transport(reason), now)
            }
            Input::LocalSignal { session, signal } => self.send_signal(session, signal, now),
            Input::Timeout => {
                if now >= self.next_tick {
                    self.next_tick = now + self.config.tick_interval;
                    self.on_tick(now);
                } else if self.entry_wake().is_some_and(|at| now >= at) {
                    // The next entry session, between ticks.
                    self.top_up(now);
                }
            }
        }
        self.rendezvous_upkeep(now);
    }

    /// Leaves, or registers at, servers as the rendezvous rules say.
    fn rendezvous_upkeep(&mut self, now: Instant) {
        let wants = self.wants_server();
        let links = &self.links;
        let change = self.rendezvous.upkeep(
            &self.config,
            now,
            wants,
            self.doors.iter(),
            |peer| links.live_link(peer).is_some(),
            &mut self.outputs,
        );
        if let Some(change) = change {
            self.on_rendezvous(change);
        }
    }

    fn on_rendezvous(&mut self, change: Change) {
        let event = match change {
            Change::Attached { server, door } => Event::ServerConnected { server, door },
            Change::Detached { server } => {
                self.server_peers.clear();
                Event::ServerDisconnected { server }
            }
        };
        self.outputs.push_back(Output::Event(event));
    }

    /// Sends `data` to `to` through the mesh, sealed for `to` (only `to` reads it, and it
    /// knows this node wrote it). If `to`'s key is not known yet, the message waits while a
    /// lookup asks for it (at most 5 s, the third round by flood with
    /// [`Config::flood_fallback`]; then [`Event::Unreachable`]).
    pub fn send(&mut self, now: Instant, to: NodeId, data: Vec<u8>) -> Result<(), Error> {
        self.send_kind(now, to, data, false)
    }

    /// Sends `data` to `to` as [`Node::send`] does, and makes sure it arrives: `to`
    /// acknowledges it; without an acknowledgement within `ack_timeout` it goes again, the
    /// same sealed bytes (taken once), through a first neighbour it has not been through
    /// (around a relay that drops it without a word), at most [`Config::reliable_resends`]
    /// times, the last time as a flood for `to` alone ([`Config::flood_fallback`]); then the
    /// application hears [`Event::Unreachable`]. At most 256 (4 MiB) under way: beyond,
    /// [`Error::Busy`].
    pub fn send_reliable(&mut self, now: Instant, to: NodeId, data: Vec<u8>) -> Result<(), Error> {
        self.send_kind(now, to, data, true)
    }

    fn send_kind(
        &mut self,
        now: Instant,
        to: NodeId,
        data: Vec<u8>,
        reliable: bool,
    ) -> Result<(), Error> {
        check_size(data.len())?;
        if to == self.id {
            return Err(Error::SelfAddressed);
        }
        if reliable && !self.reliable.has_room(data.len()) {
            return Err(Error::Busy);
        }
        if self.keys.knows(&to, now) {
            return self.send_now(to, data, reliable, now);
        }
        if self.degree() == 0 {
            return Err(Error::NoRoute(to));
        }
        if !self.await_key(to, Some((data, reliable)), now) {
            return Err(Error::NoRoute(to));
        }
        Ok(())
    }

    /// Seals `data` for `to`, whose key is known, and sends it.
    fn send_now(
        &mut self,
        to: NodeId,
        data: Vec<u8>,
        reliable: bool,
        now: Instant,
    ) -> Result<(), Error> {
        let inner = if reliable {
            Payload::Reliable(data)
        } else {
            Payload::App(data)
        };
        let (payload, seq) = self.seal_for(to, &inner, now)?.ok_or(Error::NoRoute(to))?;
        let (first_hop, payload) = self.route_out_avoiding(to, payload, &[], now)?;
        self.stats.messages_sent += 1;
        if reliable {
            self.stats.reliable_sent += 1;
            let entry = acks::Entry {
                payload,
                first_hops: vec![first_hop],
                due: now + self.config.ack_timeout,
            };
            self.reliable.keep(to, seq, entry);
        } else if first_hop != to {
            self.sent_app.keep(to, seq, payload, first_hop, now);
        }
        Ok(())
    }

    /// Floods `data` to every node of the mesh, signed; returns how many neighbours it
    /// went to.
    pub fn broadcast(&mut self, now: Instant, data: Vec<u8>) -> Result<usize, Error> {
        check_size(data.len())?;
        let payload = mesh_proto::encode_payload(&Payload::App(data))?;
        let id = self.rng.random::<u64>();
        self.dedup.insert((self.id, id), (), now);
        let frame = authored::flood(&self.key, &self.config.room, id, self.config.ttl, payload);
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
        if self.links.contains(&peer) || self.session_with(peer).is_some() {
            return Ok(());
        }
        let carrier = if self.links.is_empty() {
            Carrier::Server
        } else {
            Carrier::Mesh
        };
        if carrier == Carrier::Server && !self.server_up() {
            return Err(Error::NoRoute(peer));
        }
        if carrier == Carrier::Mesh && !self.keys.knows(&peer, now) {
            // Its offer is sealed for it: its key first.
            return if self.await_key(peer, None, now) {
                Ok(())
            } else {
                Err(Error::NoRoute(peer))
            };
        }
        self.gone.remove(&peer);
        self.learn_peers(&[peer], now);
        self.start_session(peer, carrier, now);
        Ok(())
    }

    /// Closes the link to `peer` (if any); the node will not pick `peer` again for a while.
    pub fn disconnect(&mut self, now: Instant, peer: NodeId) {
        if let Some(session) = self.links.get(&peer) {
            self.drop_link(session, LinkDownReason::Local, now);
            self.rendezvous_upkeep(now);
        }
    }

    /// Closes every session and link; the node does nothing more.
    pub fn leave(&mut self) {
        for session in self.sessions.ids() {
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
        for session in self.sessions.expired(now, timeout) {
            self.fail_session(session, true, now);
        }
        self.close_drained(now);
        self.drop_silent(now);
        self.expire_awaiting(now);
        self.resend_overdue(now);
        self.top_up(now);
        self.lookup(now);
        if self.degree() >= self.config.target_degree && self.topology_dirty {
            self.topology_dirty = !self.rewire(now);
            self.shed_redundant(now);
        }
        if now >= self.next_announce {
            self.next_announce = now + self.config.announce_interval;
            self.topology_dirty = true;
            self.announce(now);
        }
    }

    /// Drops the links that brought nothing for `link_timeout`: every node announces on
    /// each link every `announce_interval`, so such a neighbour is gone, whether or not its
    /// transport noticed (WebRTC does not always: docs/benchmarks.md §8.2).
    fn drop_silent(&mut self, now: Instant) {
        let timeout = self.config.link_timeout;
        for session in self.sessions.silent(now, timeout) {
            self.stats.links_timed_out += 1;
            self.drop_link(session, LinkDownReason::Silent(timeout), now);
        }
    }

    fn on_server_error(&mut self, code: ErrorCode, target: Option<NodeId>, now: Instant) {
        // A entry session to a peer that left the server cannot complete.
        let Some(target) = target else { return };
        if code != ErrorCode::UNKNOWN_PEER {
            return;
        }
        self.contacts.remove(&target);
        // The server's sample is a moment's: one of its peers gone, the rest may be too
        // (after a mass kill, most of an old sample is dead, and working through it one
        // session at a time kept a survivor below its minimum degree for 16 s). A fresh
        // one is asked for; it brings the next entry session.
        if self.server_peers.contains(&target) {
            self.server_peers.clear();
            self.request_peers_from_server(now);
        }
        self.fail_pending(target, Carrier::Server, now);
    }

    /// Ends the sessions with `peer` on `carrier` that are not linked yet: they cannot
    /// complete (the peer is gone, or unreachable that way).
    fn fail_pending(&mut self, peer: NodeId, carrier: Carrier, now: Instant) {
        for session in self.sessions.pending_with(peer, carrier) {
            self.fail_session(session, true, now);
        }
    }

    /// The one way a session ends without a link: counted, its peer not tried again for
    /// `retry_backoff`, and (with `close`) its transport session closed.
    fn fail_session(
        &mut self,
        session: SessionId,
        close: bool,
        now: Instant,
    ) -> Option<sessions::Session> {
        let s = self.sessions.remove(&session)?;
        self.stats.sessions_failed += 1;
        self.back_off(s.peer, now);
        self.unlinked(&s, now);
        if close {
            self.outputs.push_back(Output::CloseSession { session });
        }
        Some(s)
    }

    /// Session `s` ended without a link (failed or rejected). If it was one of ours and the
    /// node still has no link, the next entry session need not wait out the stagger.
    fn unlinked(&mut self, s: &sessions::Session, now: Instant) {
        if s.role == Role::Offerer && self.degree() == 0 {
            self.next_entry = Some(now);
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
        if let Some(existing) = self.links.get(&peer) {
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
        // Linked: no more entry sessions.
        self.next_entry = None;
        self.entry_tried.clear();
        self.short_since = None;
        self.topology_dirty = true;
        self.backoff.remove(&peer);
        self.stats.links_up += 1;
        self.outputs
            .push_back(Output::Event(Event::LinkUp { peer }));
        self.send_frame(session, &Frame::GetNeighbours);
        let own = self.config.door.as_ref().map(|url| (self.id, url));
        let doors: Vec<Door> = self.doors.to_announce(own, peer);
        if !doors.is_empty() {
            self.send_frame(session, &Frame::Doors { doors });
        }
        self.announce(now);
    }

    fn on_link_closed(&mut self, session: SessionId, reason: LinkDownReason, now: Instant) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        if s.linked {
            self.drop_link(session, reason, now);
        } else if let Some(s) = self.fail_session(session, false, now)
            && s.role == Role::Answerer
        {
            // Do not leave the offerer waiting for its timeout.
            let reject = SignalKind::Reject(RejectReason::FAILED);
            self.send_signal_to(s.peer, s.carrier, session, reject, now);
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
                self.drop_link(session, LinkDownReason::Malformed(e.to_string()), now);
                return;
            }
        };
        let spend = match &frame {
            Frame::Route { .. } | Frame::Transfer { .. } => Some(Spend::Route),
            Frame::Flood { .. } => Some(Spend::Flood),
            Frame::Lookup { .. } | Frame::FindNodes { .. } | Frame::GetNeighbours => {
                Some(Spend::Lookup)
            }
            _ => None,
        };
        if let Some(what) = spend
            && !self.within_budget(peer, session, what, now)
        {
            return;
        }
        if let Frame::Route { from, payload, .. } | Frame::Transfer { from, payload } = &frame
            && !self.origin_checks(*from, payload, session, now)
        {
            return;
        }
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
            flood @ Frame::Flood { .. } => self.on_flood(peer, session, flood, now),
            Frame::GetNeighbours => {
                let others: Vec<NodeId> = self
                    .live_links()
                    .map(|(n, _)| *n)
                    .filter(|n| *n != peer)
                    .collect();
                let peers = self.neighbours_frame(&others, now);
                self.send_frame(session, &Frame::Neighbours { peers });
            }
            Frame::Neighbours { mut peers } => {
                // The sender's own record first, then its neighbours'. Only as many are
                // verified as are kept (one 64 KiB frame holds some 680 records, each an
                // Ed25519 verification).
                peers.truncate(2 * self.config.max_degree + 1);
                let Some(mut ids) = self.verify_records(&peers, now) else {
                    // Its word about its peers is void: what it announced before too.
                    self.disown_announced(peer, now);
                    self.drop_link(session, LinkDownReason::Forged("node record".into()), now);
                    return;
                };
                if ids.first() == Some(&peer) {
                    // The neighbour's own record: its link proves it.
                    self.keys.confirm(peer, now);
                    ids.remove(0);
                }
                ids.retain(|p| *p != self.id && *p != peer);
                ids.truncate(2 * self.config.max_degree);
                // Linked to the neighbour: alive, whatever a session with them met.
                for id in &ids {
                    self.gone.remove(id);
                }
                self.learn_peers(&ids, now);
                for id in &ids {
                    self.contacts.seen(*id, now);
                }
                self.set_neighbours(peer, ids);
                self.topology_dirty = true;
            }
            Frame::FindNodes { target } => {
                let ids = self.closest_known(target, peer, MAX_NODES, now);
                let peers = self.records_of(&ids, now);
                self.send_frame(session, &Frame::Nodes { target, peers });
            }
            Frame::Nodes { .. } => {
                // Only the answer to a `FindNodes` is taken, and this node sends none (it
                // looks up through the mesh): taken unasked, any neighbour could fill the
                // contact table with made-up ids, at any rate, and send us after them.
                self.stats.bad_payloads += 1;
            }
            lookup @ Frame::Lookup { .. } => self.on_lookup_frame(peer, session, lookup, now),
            Frame::Closing => self.on_closing(peer, now),
            Frame::Doors { doors } => self.doors.on_doors(self.id, peer, doors),
            other => {
                self.stats.malformed_frames += 1;
                let why = format!("{} frames are not valid on a link", other.kind());
                self.drop_link(session, LinkDownReason::Malformed(why), now);
            }
        }
    }

    /// A `Neighbours` list: this node's own record, then those of `others` it holds.
    fn neighbours_frame(&self, others: &[NodeId], now: Instant) -> Vec<NodeRecord> {
        let mut records = Vec::with_capacity(others.len() + 1);
        records.push(self.record);
        records.extend(self.records_of(others, now));
        records
    }

    // --- links ----------------------------------------------------------------------

    /// Below the target degree, with sessions through the mesh failing and no new link for
    /// a whole session timeout (see [`Node::top_up`]).
    fn stranded(&mut self, now: Instant) -> bool {
        // A peer no lookup confirmed is a session that would have failed.
        let failed = self.stats.sessions_failed + self.stats.connects_unresolved;
        if self.degree() >= self.config.target_degree {
            self.short_since = Some((now, failed));
            return false;
        }
        let (since, failed_before) = *self.short_since.get_or_insert((now, failed));
        now.saturating_duration_since(since) >= self.config.session_timeout
            && failed > failed_before
    }

    fn top_up(&mut self, now: Instant) {
        let mut pending = self.sessions.pending_offers().count() + self.links_awaited();
        let stranded = self.stranded(now);
        self.stranded_now = stranded;
        let server_up = self.server_up();
        let alone = self.degree() == 0;
        if alone || (stranded && server_up) {
            // Through the server: with no link at all (entry sessions), or stranded: below
            // the target degree, with sessions through the mesh failing and none linking
            // for a whole session timeout. The links we have may lead only to an island
            // (survivors of a mass failure linked only to each other, passing around
            // contacts none of them can reach); the server can reach them. Stranded, the
            // node goes on topping up through the mesh as well: the server may be a
            // neighbour's door, which reaches only a few.
            if server_up {
                pending += self.start_server_sessions(alone, pending, now);
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
                // Not seen alive lately: only heard of (a record passed on) or not heard
                // from for a while, so it may well have left, and in a churning mesh such
                // peers were what nearly every failed session went to. Its own answer to a
                // lookup first: the session starts when it answers (`key_learned`).
                Some(peer) if !self.seen_lately(&peer, now) => {
                    if !self.await_key(peer, None, now) {
                        break;
                    }
                }
                Some(peer) => self.start_session(peer, Carrier::Mesh, now),
                None => {
                    self.request_neighbours(now);
                    break;
                }
            }
        }
    }

    /// A sample of the server's peers (`Welcome`, `Peers`): known from now on, and the
    /// first choice for a entry session.
    fn on_server_peers(&mut self, mut peers: Vec<NodeId>, now: Instant) {
        peers.retain(|p| *p != self.id);
        peers.truncate(MAX_SERVER_PEERS);
        peers.retain(|p| !self.below_difficulty(p));
        for p in &peers {
            self.gone.remove(p);
        }
        self.learn_peers(&peers, now);
        for p in &peers {
            self.contacts.seen(*p, now);
        }
        self.entry_tried.retain(|p| peers.contains(p));
        self.server_peers = peers;
        self.top_up(now);
    }

    /// Starts the sessions signaled through the server that the node may start now, and
    /// returns how many it started (`pending`: its outgoing sessions under way).
    ///
    /// With no link at all (`alone`), entry sessions, staggered ("happy eyeballs", RFC
    /// 8305): one with the closest eligible peer of the server's sample as soon as none is
    /// under way; then, while the node still has no link, the next closest
    /// [`Config::entry_stagger`] after the last one started, or at once after one failed;
    /// up to [`Config::entry_sessions`] under way at once, and no more than
    /// [`Config::max_pending_sessions`] sessions of any kind. In the common case the first
    /// one links within the stagger, and it is the node's only session through the
    /// server. A sampled peer that cannot link (a firewall, no usable candidate) answers,
    /// and then nothing tells the node before its `session_timeout`: one session at a time,
    /// a newcomer whose closest sampled peer was such a node waited that long for its first
    /// link; staggered, it waits one `entry_stagger`. The first link ends this rule: the
    /// entry sessions still under way are left to complete (more links, which the node
    /// wants anyway below its target degree) or to time out, as any session; they count as
    /// under way for the top-up through the mesh, so the node stays within
    /// `max_pending_sessions`.
    ///
    /// Linked but stranded ([`Node::stranded`]): one session through the server at a time.
    ///
    /// With no eligible peer in the sample and none of its sessions under way through the
    /// server, the node asks the server for a fresh sample.
    fn start_server_sessions(&mut self, alone: bool, pending: usize, now: Instant) -> usize {
        let via_server = self
            .sessions
            .pending_offers()
            .filter(|s| s.carrier == Carrier::Server)
            .count();
        if !alone {
            if via_server > 0 {
                return 0;
            }
            let Some(peer) = self.server_candidate(now) else {
                self.request_peers_from_server(now);
                return 0;
            };
            self.start_session(peer, Carrier::Server, now);
            return usize::from(self.sessions.with_peer(&peer));
        }
        let mut started = 0;
        while pending + started < self.entry_cap()
            && (pending + started == 0 || self.next_entry.is_some_and(|at| now >= at))
        {
            let Some(peer) = self.server_candidate(now) else {
                if via_server + started == 0 {
                    self.request_peers_from_server(now);
                }
                // Until a session ends or links: nothing to wake for.
                self.next_entry = None;
                break;
            };
            self.start_session(peer, Carrier::Server, now);
            if !self.entry_tried.contains(&peer) {
                self.entry_tried.push(peer);
            }
            // Eligible before, so without a session with us: one now if it started. The
            // table or the session budget may hold it back: then the next waits for a
            // session to end (with none under way, for the next tick).
            if !self.sessions.with_peer(&peer) {
                self.next_entry = None;
                break;
            }
            started += 1;
            self.next_entry = Some(now + self.config.entry_stagger);
        }
        started
    }

    /// Most entry sessions under way at once ([`Config::entry_sessions`], within
    /// [`Config::max_pending_sessions`]).
    fn entry_cap(&self) -> usize {
        self.config
            .entry_sessions
            .min(self.config.max_pending_sessions)
    }

    /// When the next entry session is due, if the node has no link, a server to signal
    /// through and room for one more session under way: [`Node::poll_timeout`] wakes the
    /// node for it between ticks.
    fn entry_wake(&self) -> Option<Instant> {
        let at = self.next_entry?;
        let pending = self.sessions.pending_offers().count() + self.links_awaited();
        (!self.leaving && self.degree() == 0 && self.server_up() && pending < self.entry_cap())
            .then_some(at)
    }

    /// The eligible peer of the server's last sample closest to us: registered at the
    /// server, so a entry session with it can go through (a contact may have gone).
    ///
    /// With no link, a peer an entry session was already tried with comes after every
    /// untried one (`entry_tried`).
    fn server_candidate(&self, now: Instant) -> Option<NodeId> {
        self.server_peers
            .iter()
            .filter(|p| self.is_eligible(p, now))
            .min_by_key(|p| (self.entry_tried.contains(p), self.id.distance(p)))
            .copied()
    }

    fn request_peers_from_server(&mut self, now: Instant) {
        if let Some(server) = self.rendezvous.attached().cloned()
            && now >= self.next_peer_request
        {
            self.next_peer_request = now + self.config.retry_backoff;
            let frame = Frame::GetPeers { max: 16 };
            self.outputs.push_back(Output::SendServer { server, frame });
        }
    }

    fn request_neighbours(&mut self, now: Instant) {
        if now < self.next_peer_request {
            return;
        }
        self.next_peer_request = now + self.config.announce_interval;
        let sessions: Vec<SessionId> = self.links.all().map(|(_, s)| *s).collect();
        for session in sessions {
            self.send_frame(session, &Frame::GetNeighbours);
        }
    }

    /// Tells every neighbour our neighbour set (with our own record first).
    fn announce(&mut self, now: Instant) {
        let all: Vec<(NodeId, SessionId)> = self.live_links().map(|(p, s)| (*p, *s)).collect();
        for (peer, session) in &all {
            let others: Vec<NodeId> = all.iter().map(|(p, _)| *p).filter(|p| p != peer).collect();
            let peers = self.neighbours_frame(&others, now);
            self.send_frame(*session, &Frame::Neighbours { peers });
        }
    }

    fn drop_link(&mut self, session: SessionId, reason: LinkDownReason, now: Instant) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        let peer = s.peer;
        self.outputs.push_back(Output::CloseSession { session });
        // Whatever ended the link (a bad frame, a close, a departure), do not re-link at once.
        self.back_off(peer, now);
        if self.links.get(&peer) == Some(session) {
            // Ended without notice (no `Closing`): the peer left or failed, most likely.
            // Not a contact any more, so that neither this node nor those it answers
            // lookups for spend a session on it; its own traffic or a neighbour's
            // announcement brings it back if it lives (docs/benchmarks.md §14.18).
            let without_notice = matches!(
                reason,
                LinkDownReason::Transport(_) | LinkDownReason::Silent(_)
            ) && !self.links.is_draining(&peer);
            if without_notice {
                self.contacts.remove(&peer);
            }
            self.topology_dirty = true;
            self.links.remove(&peer);
            self.budgets.remove(&peer);
            self.neighbour_sets.remove(&peer);
            self.routes.retain(|_, via| *via != peer);
            self.stats.links_down += 1;
            // Repair: hear of the peers now closest to us through the mesh soon.
            self.lookups.link_lost(&self.config, now);
            self.outputs
                .push_back(Output::Event(Event::LinkDown { peer, reason }));
            self.announce(now);
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

    /// `neighbour` sent a record that fails, so its word about its peers is void, what it
    /// announced before too: the peers only its word made contacts
    /// (announced by no other neighbour, not linked to us) are forgotten and kept out as
    /// gone, as a dead end would; their own traffic, an offer, the server's sample or an
    /// honest neighbour's announcement brings them back.
    fn disown_announced(&mut self, neighbour: NodeId, now: Instant) {
        let Some(announced) = self.neighbour_sets.remove(&neighbour) else {
            return;
        };
        for p in announced.peers {
            let vouched = self.links.contains(&p)
                || self
                    .neighbour_sets
                    .values()
                    .any(|other| other.peers.contains(&p));
            if !vouched {
                self.forget_as_gone(p, now);
            }
        }
    }

    /// `peer` is most likely not running: no longer a contact, and records passed on do
    /// not make it one again for `GONE_TTL` (its own traffic, its offer, the server's
    /// sample or a neighbour's announcement do).
    pub(super) fn forget_as_gone(&mut self, peer: NodeId, now: Instant) {
        self.contacts.remove(&peer);
        self.gone.insert(peer, (), now);
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
        for (peer, session) in self.links.live() {
            if Some(*peer) != except {
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

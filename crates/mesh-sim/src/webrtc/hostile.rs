//! Hostile nodes on real WebRTC links (`--hostile F --attack KIND`). With hostile nodes in
//! a run, every node runs the honest `mesh_node::Node` over a [`Watched`] transport, which
//! wraps the real webrtc one and applies the node's attack to what it sends, by the rules
//! both transports share (`crate::attack`):
//! - a dropper's drops every unicast the node relays, `Route`/`Transfer` and floods for
//!   one node ([`crate::attack::dropped`]), saying nothing;
//! - a forger's rewrites every `Route`, `Transfer` and `Flood` it sends
//!   ([`crate::attack::Forger`], claiming the honest initial nodes of [`Cast::roster`] in
//!   turn); a relayed flood's forged payload is a [`Kind::Forged`] traffic payload, so an
//!   honest node that delivered it would count it as `forged_delivered`;
//! - a poisoner's replaces the records of every `Neighbours` it sends with made-up ones
//!   ([`crate::attack::poison`], fresh keys from the node's seed, noted in
//!   [`Cast::made_up`]);
//! - a flooder's keeps the node's sessions, and [`flood`] sends validly signed floods of
//!   made-up nodes on them straight through the real transport, at up to
//!   `crate::attack::SPAM_RATE` a second (through the node's command queue it managed about
//!   10 a second with 100 nodes in the process).
//!
//! An honest node's passes everything on and counts the sessions it opens to made-up nodes
//! (`sessions_to_made_up`: what poisoned records cost).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_node::transport::{CandidatePairsFuture, Role, SendError, SignalBody, Transport};
use mesh_proto::identity::{Keypair, PublicKey};
use mesh_proto::signal::{Payload, SessionId};
use mesh_proto::{Frame, NodeId, RoomName, authored};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::observe::{self, Kind, lock};
use crate::AttackKind;
use crate::attack::{Forger, SPAM_RATE, concerns};

/// The sessions a node's transport has open, with their peers; shared with a flooder's
/// [`flood`] task.
pub(super) type Sessions = Arc<Mutex<HashMap<SessionId, NodeId>>>;

/// What the hostile nodes of a run share with it and with each other.
#[derive(Debug, Default)]
pub(super) struct Cast {
    /// The honest initial nodes that have started, in order: whom forgeries claim.
    pub roster: Mutex<Vec<(NodeId, PublicKey)>>,
    /// Ids of the made-up nodes poisoners announced.
    pub made_up: Mutex<HashSet<NodeId>>,
    /// Frames the droppers dropped.
    pub frames_dropped: AtomicU64,
    /// Frames the forgers and poisoners rewrote.
    pub frames_rewritten: AtomicU64,
    /// Sessions honest nodes opened to made-up nodes.
    pub sessions_to_made_up: AtomicU64,
}

/// What a node's transport does to what it sends. Only forgers and poisoners keep state
/// that changes, behind their own lock: an honest node's frames (and a dropper's) take none.
enum Conduct {
    /// Nothing: an honest node (or a flooder, whose floods go around it).
    Pass,
    Drop,
    Forge(Mutex<Forging>),
    Poison(Mutex<Poisoning>),
}

/// A forger's own key, room and turn ([`Forger`]).
struct Forging {
    key: Keypair,
    room: RoomName,
    turn: u64,
}

/// A poisoner's room, lists poisoned so far and the source of its made-up keys.
struct Poisoning {
    room: RoomName,
    sent: u64,
    keys: StdRng,
}

/// A transport that passes everything to `inner` but applies its node's attack to what
/// the node sends, and records its sessions.
pub(super) struct Watched<T> {
    inner: Arc<T>,
    me: NodeId,
    /// Honest: counts its sessions to made-up nodes.
    honest: bool,
    conduct: Conduct,
    cast: Arc<Cast>,
    sessions: Sessions,
}

impl<T> Watched<T> {
    /// `inner` for the node of `key`, which runs `attack` (`None`: honest); `seed` makes a
    /// poisoner's keys. Also returns what [`flood`] needs to send on its sessions (`inner`
    /// is not kept alive by it: the node's leave still closes every session).
    pub(super) fn new(
        inner: T,
        key: Keypair,
        attack: Option<AttackKind>,
        seed: u64,
        cast: Arc<Cast>,
    ) -> (Self, Weak<T>, Sessions) {
        let inner = Arc::new(inner);
        let sessions = Sessions::default();
        let weak = Arc::downgrade(&inner);
        let me = key.node_id();
        let conduct = match attack {
            Some(AttackKind::Drop) => Conduct::Drop,
            Some(AttackKind::Forge) => Conduct::Forge(Mutex::new(Forging {
                key,
                room: RoomName::default(),
                turn: 0,
            })),
            Some(AttackKind::Poison) => Conduct::Poison(Mutex::new(Poisoning {
                room: RoomName::default(),
                sent: 0,
                keys: StdRng::seed_from_u64(seed),
            })),
            // `initial` gives each hostile node one attack: never `Mixed`.
            Some(AttackKind::Flood | AttackKind::Mixed) | None => Conduct::Pass,
        };
        let transport = Self {
            inner,
            me,
            honest: attack.is_none(),
            conduct,
            cast,
            sessions: sessions.clone(),
        };
        (transport, weak, sessions)
    }

    /// What the node's attack makes of `bytes`, sent on `session`: `None` to drop it
    /// (silently: to the node, it went out).
    fn conduct(&self, session: SessionId, bytes: Bytes) -> Option<Bytes> {
        let rewritten = match &self.conduct {
            Conduct::Pass => None,
            Conduct::Drop => {
                if crate::attack::dropped(&bytes, self.me) {
                    self.cast.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                None
            }
            Conduct::Forge(forging) if concerns(AttackKind::Forge, &bytes) => {
                self.forge(&mut lock(forging), session, &bytes)
            }
            Conduct::Poison(poisoning) if concerns(AttackKind::Poison, &bytes) => {
                self.poison(&mut lock(poisoning), &bytes)
            }
            Conduct::Forge(_) | Conduct::Poison(_) => None,
        };
        match rewritten.map(|frame| mesh_proto::encode(&frame)) {
            Some(Ok(encoded)) => {
                self.cast.frames_rewritten.fetch_add(1, Ordering::Relaxed);
                Some(Bytes::from(encoded))
            }
            _ => Some(bytes),
        }
    }

    /// A forger's version of `bytes`, sent on `session` ([`Forger`]); `None`: as it is.
    fn forge(&self, forging: &mut Forging, session: SessionId, bytes: &[u8]) -> Option<Frame> {
        let receiver = lock(&self.sessions).get(&session).copied()?;
        let frame = mesh_proto::decode(bytes).ok()?;
        let roster = lock(&self.cast.roster);
        let mut forger = Forger {
            me: &forging.key,
            room: &forging.room,
            turn: &mut forging.turn,
        };
        forger.forge(frame, receiver, roster.as_slice(), || {
            observe::payload(Kind::Forged, 0, 0)
        })
    }

    /// A poisoner's version of the `Neighbours` frame `bytes` ([`crate::attack::poison`]),
    /// its made-up ids noted in [`Cast::made_up`]; `None`: as it is.
    fn poison(&self, poisoning: &mut Poisoning, bytes: &[u8]) -> Option<Frame> {
        let Ok(Frame::Neighbours { peers }) = mesh_proto::decode(bytes) else {
            return None;
        };
        poisoning.sent += 1;
        let Poisoning { room, sent, keys } = poisoning;
        let mut made_up = lock(&self.cast.made_up);
        Some(crate::attack::poison(peers, room, *sent, || {
            let key = Keypair::from_seed(keys.random());
            made_up.insert(key.node_id());
            key
        }))
    }
}

impl<T: Transport> Transport for Watched<T> {
    fn open(&self, session: SessionId, peer: NodeId, role: Role) -> Result<(), mesh_node::Error> {
        lock(&self.sessions).insert(session, peer);
        if self.honest && lock(&self.cast.made_up).contains(&peer) {
            self.cast
                .sessions_to_made_up
                .fetch_add(1, Ordering::Relaxed);
        }
        self.inner.open(session, peer, role)
    }

    fn remote_signal(&self, session: SessionId, signal: SignalBody) {
        self.inner.remote_signal(session, signal);
    }

    fn send(&self, session: SessionId, bytes: Bytes) -> Result<(), SendError> {
        match self.conduct(session, bytes) {
            Some(bytes) => self.inner.send(session, bytes),
            None => Ok(()),
        }
    }

    fn close(&self, session: SessionId) {
        lock(&self.sessions).remove(&session);
        self.inner.close(session);
    }

    fn candidate_pairs(&self, sessions: &[SessionId]) -> CandidatePairsFuture {
        self.inner.candidate_pairs(sessions)
    }

    fn use_server_stun(&self, url: Option<String>) {
        self.inner.use_server_stun(url);
    }
}

/// A flooder: [`SPAM_RATE`] floods a second at most, each signed by a fresh key (a made-up
/// node; keys and flood ids from `seed`) in the default room, sent on every session of
/// `transport` (those not linked refuse it), `spam` in all; counted in `sent`. Their
/// payloads are [`Kind::Spam`] traffic, so the honest nodes that deliver one are counted.
/// Ends when done or when the node's transport is gone.
pub(super) async fn flood<T: Transport>(
    transport: Weak<T>,
    sessions: Sessions,
    seed: u64,
    spam: u32,
    ttl: u8,
    start: Instant,
    sent: Arc<AtomicU64>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let room = RoomName::default();
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / SPAM_RATE));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..u64::from(spam) {
        every.tick().await;
        let Some(transport) = transport.upgrade() else {
            return;
        };
        let key = Keypair::from_seed(rng.random());
        let data = observe::payload(Kind::Spam, n, start.elapsed().as_micros() as u64);
        let Ok(payload) = mesh_proto::encode_payload(&Payload::App(data)) else {
            continue;
        };
        let frame = authored::flood(&key, &room, rng.random(), ttl, payload);
        let Ok(bytes) = mesh_proto::encode(&frame) else {
            continue;
        };
        sent.fetch_add(1, Ordering::Relaxed);
        let open: Vec<SessionId> = lock(&sessions).keys().copied().collect();
        let bytes = Bytes::from(bytes);
        for session in open {
            // A session not (or no longer) linked refuses it: the others still get it.
            let _ = transport.send(session, bytes.clone());
        }
    }
}

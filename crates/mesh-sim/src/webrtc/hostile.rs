//! Hostile nodes on real WebRTC links (`--hostile F --attack drop|flood`). A hostile node
//! runs the honest `mesh_node::Node` over a [`Hostile`] transport, which wraps the real
//! webrtc one:
//! - a dropper's drops every unicast the node relays, `Route`/`Transfer` and floods for
//!   one node (the memory transport's rule, `crate::attack::dropped`), saying nothing;
//! - a flooder's keeps the node's sessions, and [`flood`] sends validly signed floods of
//!   made-up nodes on them straight through the real transport, at up to
//!   `crate::attack::SPAM_RATE` a second (through the node's command queue it managed about
//!   10 a second with 100 nodes in the process).
//!
//! Forgeries and poisoned records rewrite frames with other nodes' keys; they run on the
//! memory transport only.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_node::transport::{CandidatePairsFuture, Role, SendError, SignalBody, Transport};
use mesh_proto::identity::Keypair;
use mesh_proto::signal::{Payload, SessionId};
use mesh_proto::{NodeId, RoomName, authored};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::observe::{self, Kind, lock};
use crate::attack::SPAM_RATE;

/// The sessions a flooder's transport has open, shared with its [`flood`] task.
pub(super) type Sessions = Arc<Mutex<HashSet<SessionId>>>;

/// A transport that passes everything to `inner`, but for what its node relays (with
/// `dropped`: swallowed and counted there), and records its sessions.
pub(super) struct Hostile<T> {
    inner: Arc<T>,
    me: NodeId,
    dropped: Option<Arc<AtomicU64>>,
    sessions: Sessions,
}

impl<T> Hostile<T> {
    /// `inner` for node `me`, a dropper if `dropped` is given; what [`flood`] needs to
    /// send on its sessions (`inner` is not kept alive by it: the node's leave still closes
    /// every session).
    pub(super) fn new(
        inner: T,
        me: NodeId,
        dropped: Option<Arc<AtomicU64>>,
    ) -> (Self, Weak<T>, Sessions) {
        let inner = Arc::new(inner);
        let sessions = Sessions::default();
        let weak = Arc::downgrade(&inner);
        let transport = Self {
            inner,
            me,
            dropped,
            sessions: sessions.clone(),
        };
        (transport, weak, sessions)
    }
}

impl<T: Transport> Transport for Hostile<T> {
    fn open(&self, session: SessionId, peer: NodeId, role: Role) -> Result<(), mesh_node::Error> {
        lock(&self.sessions).insert(session);
        self.inner.open(session, peer, role)
    }

    fn remote_signal(&self, session: SessionId, signal: SignalBody) {
        self.inner.remote_signal(session, signal);
    }

    fn send(&self, session: SessionId, bytes: Bytes) -> Result<(), SendError> {
        if let Some(dropped) = &self.dropped
            && crate::attack::dropped(&bytes, self.me)
        {
            // Silently: to the node, the frame went out.
            dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.inner.send(session, bytes)
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
        let open: Vec<SessionId> = lock(&sessions).iter().copied().collect();
        let bytes = Bytes::from(bytes);
        for session in open {
            // A session not (or no longer) linked refuses it: the others still get it.
            let _ = transport.send(session, bytes.clone());
        }
    }
}

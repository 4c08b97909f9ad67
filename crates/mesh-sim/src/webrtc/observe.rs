//! What each node sees. One task per node consumes the node's (bounded) event channel and
//! records, with its own clock readings: the first link, the moment its degree reached
//! the minimum (degree tracked from `LinkUp`/`LinkDown`), and the traffic it received.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use mesh_node::{Event, LinkDownReason};
use mesh_proto::NodeId;

/// What a traffic payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A unicast of the scenario's traffic.
    Unicast,
    /// A broadcast of the scenario's traffic.
    Broadcast,
    /// A unicast sent alone in a quiet mesh to count its hops.
    Probe,
    /// A flood of a made-up node, sent by a flooder (`--attack flood`).
    Spam,
    /// What a forger put in a flood it relayed (`--attack forge`): any delivery at an
    /// honest node is a forgery.
    Forged,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::Unicast => b'u',
            Kind::Broadcast => b'b',
            Kind::Probe => b'p',
            Kind::Spam => b's',
            Kind::Forged => b'f',
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            b'u' => Some(Kind::Unicast),
            b'b' => Some(Kind::Broadcast),
            b'p' => Some(Kind::Probe),
            b's' => Some(Kind::Spam),
            b'f' => Some(Kind::Forged),
            _ => None,
        }
    }
}

/// A traffic payload: the kind, the message id and the send time (µs since the run
/// started), 17 bytes.
pub(super) fn payload(kind: Kind, id: u64, sent_us: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(17);
    bytes.push(kind.tag());
    bytes.extend_from_slice(&id.to_le_bytes());
    bytes.extend_from_slice(&sent_us.to_le_bytes());
    bytes
}

/// The inverse of [`payload`]; `None` for anything else.
pub(super) fn parse(bytes: &[u8]) -> Option<(Kind, u64, u64)> {
    let (&tag, rest) = bytes.split_first()?;
    if rest.len() != 16 {
        return None;
    }
    let (id, sent) = rest.split_at(8);
    Some((
        Kind::from_tag(tag)?,
        u64::from_le_bytes(id.try_into().ok()?),
        u64::from_le_bytes(sent.try_into().ok()?),
    ))
}

/// One node's record.
#[derive(Debug, Default)]
pub(super) struct Record {
    neighbours: HashSet<NodeId>,
    /// When the first link came up.
    pub first_link: Option<Instant>,
    /// When the degree first reached the minimum.
    pub full_degree: Option<Instant>,
}

/// What every node's task shares with the run.
#[derive(Debug)]
pub(super) struct Shared {
    /// When the run started: payload send times count from here.
    pub start: Instant,
    /// Nodes of the initial population (indices `0..initial`).
    pub initial: usize,
    /// The overlay's minimum degree.
    pub min_degree: usize,
    /// Initial nodes that have had a link.
    pub joined_initial: AtomicUsize,
    /// All nodes that have had a link.
    pub joined_total: AtomicUsize,
    /// Initial nodes whose degree has reached the minimum.
    pub formed_initial: AtomicUsize,
    /// Ids of the hostile nodes (added before each starts).
    pub hostile: Mutex<HashSet<NodeId>>,
    /// Traffic received.
    pub traffic: Mutex<Traffic>,
}

/// Traffic sent (registered before it is sent) and received. Every vector is indexed by
/// message id and grows by one per message the run sends, so it is bounded by the
/// scenario's rates times its duration.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    /// Whether unicast `id` arrived.
    pub unicast_arrived: Vec<bool>,
    /// Unicasts delivered (once each).
    pub unicast_delivered: u64,
    /// A unicast delivered more than once (the overlay must never do it).
    pub unicast_duplicates: u64,
    /// Send → delivery of each delivered unicast, ms.
    pub unicast_latency_ms: Vec<f64>,
    /// Nodes that received broadcast `id`.
    pub broadcast_receipts: Vec<u32>,
    /// Honest nodes that received broadcast `id`.
    pub broadcast_honest_receipts: Vec<u32>,
    /// The origin of each unicast and of each broadcast, by id (registered with the
    /// message): a delivery claiming another is a forgery.
    pub unicast_from: Vec<NodeId>,
    pub broadcast_from: Vec<NodeId>,
    /// Deliveries at honest nodes of a message whose claimed origin is not its author.
    pub forged_delivered: u64,
    /// Links honest nodes closed for a forgery, and of those to an honest neighbour.
    pub links_dropped_forged: (u64, u64),
    /// Links honest nodes closed over budget, and of those to an honest neighbour.
    pub links_over_budget: (u64, u64),
    /// Deliveries at honest nodes of the flooders' floods.
    pub spam_delivered: u64,
    /// Whether probe `id` arrived.
    pub probe_arrived: Vec<bool>,
}

impl Traffic {
    /// Registers a unicast from `origin`: its id.
    pub fn unicast_sent(&mut self, origin: NodeId) -> u64 {
        self.unicast_arrived.push(false);
        self.unicast_from.push(origin);
        self.unicast_from.len() as u64 - 1
    }

    /// Registers a broadcast from `origin`: its id.
    pub fn broadcast_sent(&mut self, origin: NodeId) -> u64 {
        self.broadcast_receipts.push(0);
        self.broadcast_honest_receipts.push(0);
        self.broadcast_from.push(origin);
        self.broadcast_from.len() as u64 - 1
    }

    /// Message `id` of `kind`, claiming `from` as its origin, arrived at a node (`honest`
    /// or not) `latency_ms` after it was sent. A claim that is not the author's counts as
    /// a forgery, not as a delivery.
    fn received(&mut self, kind: Kind, id: u64, from: NodeId, honest: bool, latency_ms: f64) {
        let Ok(i) = usize::try_from(id) else { return };
        let author = match kind {
            Kind::Unicast => self.unicast_from.get(i),
            Kind::Broadcast => self.broadcast_from.get(i),
            Kind::Probe | Kind::Spam => None,
            Kind::Forged => {
                self.forged_delivered += u64::from(honest);
                return;
            }
        };
        if author.is_some_and(|a| *a != from) {
            self.forged_delivered += u64::from(honest);
            return;
        }
        match kind {
            Kind::Unicast => match self.unicast_arrived.get_mut(i) {
                Some(seen @ false) => {
                    *seen = true;
                    self.unicast_delivered += 1;
                    self.unicast_latency_ms.push(latency_ms);
                }
                Some(true) => self.unicast_duplicates += 1,
                None => {}
            },
            Kind::Broadcast => {
                if let Some(n) = self.broadcast_receipts.get_mut(i) {
                    *n += 1;
                }
                if let (true, Some(n)) = (honest, self.broadcast_honest_receipts.get_mut(i)) {
                    *n += 1;
                }
            }
            Kind::Probe => {
                if let Some(seen) = self.probe_arrived.get_mut(i) {
                    *seen = true;
                }
            }
            Kind::Spam => self.spam_delivered += u64::from(honest),
            Kind::Forged => {}
        }
    }
}

/// Locks `m`, ignoring poisoning (a panicked recorder leaves plain counters behind).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Consumes node `index`'s (`honest` or not) events until the node stops.
pub(super) async fn observe(
    index: usize,
    honest: bool,
    mut events: mesh_node::Events,
    record: Arc<Mutex<Record>>,
    shared: Arc<Shared>,
) {
    while let Some(event) = events.recv().await {
        let now = Instant::now();
        match event {
            Event::LinkUp { peer } => {
                let mut r = lock(&record);
                r.neighbours.insert(peer);
                if r.first_link.is_none() {
                    r.first_link = Some(now);
                    shared.joined_total.fetch_add(1, Ordering::Relaxed);
                    if index < shared.initial {
                        shared.joined_initial.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if r.full_degree.is_none() && r.neighbours.len() >= shared.min_degree {
                    r.full_degree = Some(now);
                    if index < shared.initial {
                        shared.formed_initial.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Event::LinkDown { peer, reason } => {
                lock(&record).neighbours.remove(&peer);
                let counted = match reason {
                    LinkDownReason::Forged(_) => Some(true),
                    LinkDownReason::OverBudget => Some(false),
                    _ => None,
                };
                if let (true, Some(forged)) = (honest, counted) {
                    let honest_peer = !lock(&shared.hostile).contains(&peer);
                    let mut t = lock(&shared.traffic);
                    let n = if forged {
                        &mut t.links_dropped_forged
                    } else {
                        &mut t.links_over_budget
                    };
                    n.0 += 1;
                    n.1 += u64::from(honest_peer);
                }
            }
            Event::Message { from, data } | Event::Broadcast { from, data } => {
                if let Some((kind, id, sent_us)) = parse(&data) {
                    let now_us = now.saturating_duration_since(shared.start).as_micros();
                    let latency_ms = now_us.saturating_sub(u128::from(sent_us)) as f64 / 1e3;
                    lock(&shared.traffic).received(kind, id, from, honest, latency_ms);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_reject_other_bytes() {
        for kind in [
            Kind::Unicast,
            Kind::Broadcast,
            Kind::Probe,
            Kind::Spam,
            Kind::Forged,
        ] {
            assert_eq!(parse(&payload(kind, 7, 1234)), Some((kind, 7, 1234)));
        }
        assert_eq!(parse(b"hello"), None);
        let mut bad = payload(Kind::Unicast, 1, 2);
        bad[0] = b'x';
        assert_eq!(parse(&bad), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn traffic_counts_each_unicast_once() {
        let a = mesh_proto::identity::Keypair::from_seed([1; 32]).node_id();
        let b = mesh_proto::identity::Keypair::from_seed([2; 32]).node_id();
        let mut t = Traffic::default();
        assert_eq!((t.unicast_sent(a), t.unicast_sent(b)), (0, 1));
        assert_eq!(t.broadcast_sent(a), 0);
        t.received(Kind::Unicast, 1, b, true, 3.0);
        t.received(Kind::Unicast, 1, b, true, 4.0);
        t.received(Kind::Unicast, 9, b, true, 4.0);
        t.received(Kind::Broadcast, 0, a, true, 1.0);
        t.received(Kind::Broadcast, 0, a, false, 1.0);
        assert_eq!((t.unicast_delivered, t.unicast_duplicates), (1, 1));
        assert_eq!(t.unicast_latency_ms, [3.0]);
        assert_eq!(t.broadcast_receipts, [2]);
        assert_eq!(t.broadcast_honest_receipts, [1]);
        assert_eq!(t.forged_delivered, 0);
    }

    #[test]
    fn a_delivery_claiming_another_origin_is_a_forgery_not_a_delivery() {
        let a = mesh_proto::identity::Keypair::from_seed([1; 32]).node_id();
        let b = mesh_proto::identity::Keypair::from_seed([2; 32]).node_id();
        let mut t = Traffic::default();
        t.unicast_sent(a);
        t.broadcast_sent(a);
        t.received(Kind::Unicast, 0, b, true, 1.0);
        t.received(Kind::Broadcast, 0, b, true, 1.0);
        // At a hostile node it is not counted (the attack is on the honest ones).
        t.received(Kind::Unicast, 0, b, false, 1.0);
        assert_eq!(t.forged_delivered, 2);
        // What a forger put in a relayed flood: a forgery whoever it claims.
        t.received(Kind::Forged, 0, a, true, 1.0);
        t.received(Kind::Forged, 0, a, false, 1.0);
        assert_eq!(t.forged_delivered, 3);
        assert_eq!(t.unicast_delivered, 0);
        assert_eq!(t.broadcast_receipts, [0]);
    }
}

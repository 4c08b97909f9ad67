//! The registry of one server's own sessions: rooms of peers, each peer with its outgoing
//! queue. Alone, it is the whole registry (one server); in a fleet, it is the part that holds
//! the sessions of this process, and the Redis side ([`super::fleet`]) shares it.
//!
//! Every operation is non-blocking (`try_send` under a shard lock, never an `.await`), so
//! a slow peer can never stall the sessions that deliver to it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use bytes::Bytes;
use dashmap::DashMap;
use mesh_proto::identity::PublicKey;
use mesh_proto::{ErrorCode, NodeId, RoomName};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Delivery, Outbound, Registration};

/// A registered session, as seen by others.
#[derive(Debug)]
struct Peer {
    public_key: PublicKey,
    session: u64,
    tx: mpsc::Sender<Outbound>,
    /// Cancelled when a new session with the same key replaces this one.
    replaced: CancellationToken,
    /// Position in `Room::order`.
    index: usize,
}

#[derive(Debug, Default)]
struct Room {
    peers: HashMap<NodeId, Peer>,
    /// The same ids as `peers`, in a vector for O(k) random sampling.
    order: Vec<NodeId>,
}

/// All rooms of one server's own sessions.
#[derive(Debug)]
pub(crate) struct Local {
    rooms: DashMap<RoomName, Room>,
    max_peers_per_room: usize,
}

impl Local {
    pub fn new(max_peers_per_room: usize) -> Self {
        Self {
            rooms: DashMap::new(),
            max_peers_per_room,
        }
    }

    /// Registers a session. A node id already held by the same key is taken over (the old
    /// session's `replaced` token is cancelled); held by another key, it is refused.
    pub fn register(&self, reg: Registration) -> Result<(), ErrorCode> {
        let mut room = self.rooms.entry(reg.room).or_default();
        let room = &mut *room;
        let len = room.order.len();
        match room.peers.entry(reg.node_id) {
            Entry::Occupied(mut held) => {
                if held.get().public_key != reg.public_key {
                    return Err(ErrorCode::NODE_ID_IN_USE);
                }
                let index = held.get().index;
                let old = held.insert(Peer {
                    public_key: reg.public_key,
                    session: reg.session,
                    tx: reg.tx,
                    replaced: reg.replaced,
                    index,
                });
                old.replaced.cancel();
            }
            Entry::Vacant(slot) => {
                if len >= self.max_peers_per_room {
                    return Err(ErrorCode::ROOM_FULL);
                }
                slot.insert(Peer {
                    public_key: reg.public_key,
                    session: reg.session,
                    tx: reg.tx,
                    replaced: reg.replaced,
                    index: len,
                });
                room.order.push(reg.node_id);
            }
        }
        Ok(())
    }

    /// Removes `node_id` from `room` if it is still held by `session` (a replaced session
    /// must not remove its successor). Empty rooms are dropped. Returns whether it removed.
    pub fn unregister(&self, room_name: &RoomName, node_id: &NodeId, session: u64) -> bool {
        let removed = self.rooms.get_mut(room_name).is_some_and(|mut room| {
            let room = &mut *room;
            if room.peers.get(node_id).is_none_or(|p| p.session != session) {
                return false;
            }
            let Some(peer) = room.peers.remove(node_id) else {
                return false;
            };
            room.order.swap_remove(peer.index);
            if let Some(moved) = room.order.get(peer.index)
                && let Some(p) = room.peers.get_mut(moved)
            {
                p.index = peer.index;
            }
            true
        });
        self.rooms
            .remove_if(room_name, |_, room| room.peers.is_empty());
        removed
    }

    /// Queues `out` for `to` without waiting.
    pub fn deliver(&self, room: &RoomName, to: &NodeId, out: Outbound) -> Delivery {
        self.deliver_here(room, to, out)
            .unwrap_or(Delivery::UnknownPeer)
    }

    /// Queues `out` for `to` without waiting if `to` is registered here; gives `out` back
    /// if it is not (a fleet server then looks for it elsewhere).
    pub fn deliver_here(
        &self,
        room: &RoomName,
        to: &NodeId,
        out: Outbound,
    ) -> Result<Delivery, Outbound> {
        let Some(room) = self.rooms.get(room) else {
            return Err(out);
        };
        let Some(peer) = room.peers.get(to) else {
            return Err(out);
        };
        Ok(match peer.tx.try_send(out) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Delivery::Busy,
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::UnknownPeer,
        })
    }

    /// Queues `bytes` for every peer of `room` but `from`. Returns (queued, dropped).
    pub fn broadcast(&self, room: &RoomName, from: &NodeId, bytes: &Bytes) -> (usize, usize) {
        let Some(room) = self.rooms.get(room) else {
            return (0, 0);
        };
        let (mut queued, mut dropped) = (0, 0);
        for (id, peer) in &room.peers {
            if id == from {
                continue;
            }
            let out = Outbound {
                bytes: bytes.clone(),
                kind: "transfer_broadcast",
                received: None,
            };
            match peer.tx.try_send(out) {
                Ok(()) => queued += 1,
                Err(_) => dropped += 1,
            }
        }
        (queued, dropped)
    }

    /// A uniformly random sample of up to `k` peers of `room`, never `exclude`. O(k).
    pub fn sample(&self, room: &RoomName, exclude: &NodeId, k: usize) -> Vec<NodeId> {
        let Some(room) = self.rooms.get(room) else {
            return Vec::new();
        };
        let n = room.order.len();
        let mut rng = rand::rng();
        // Draw one extra so that skipping `exclude` still leaves k.
        let draw = (k + 1).min(n);
        let mut picked: Vec<NodeId> = rand::seq::index::sample(&mut rng, n, draw)
            .into_iter()
            .map(|i| room.order[i])
            .filter(|id| id != exclude)
            .collect();
        picked.truncate(k);
        // `index::sample` may return indices in order; shuffle so truncation is fair.
        for i in (1..picked.len()).rev() {
            picked.swap(i, rng.random_range(0..=i));
        }
        picked
    }

    /// Ends the session `session` of `node_id` in `room` if it still holds the registration
    /// (a newer registration of the same key elsewhere in the fleet replaced it): its
    /// `replaced` token is cancelled, and the session unregisters itself as it ends.
    /// Returns whether it did.
    pub fn kick(&self, room: &RoomName, node_id: &NodeId, session: u64) -> bool {
        let Some(room) = self.rooms.get(room) else {
            return false;
        };
        match room.peers.get(node_id) {
            Some(peer) if peer.session == session => {
                peer.replaced.cancel();
                true
            }
            _ => false,
        }
    }

    /// Every registration held, as (room, node, session): what a fleet server announces.
    pub fn snapshot(&self) -> Vec<(RoomName, NodeId, u64)> {
        let mut all = Vec::new();
        for room in &self.rooms {
            for (id, peer) in &room.peers {
                all.push((room.key().clone(), *id, peer.session));
            }
        }
        all
    }

    /// (rooms, registered peers), for metrics.
    pub fn counts(&self) -> (usize, usize) {
        let peers = self.rooms.iter().map(|r| r.peers.len()).sum();
        (self.rooms.len(), peers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proto::identity::Keypair;

    fn reg(
        room: &RoomName,
        key: &Keypair,
        session: u64,
    ) -> (Registration, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(2);
        let reg = Registration {
            room: room.clone(),
            node_id: key.node_id(),
            public_key: key.public(),
            session,
            tx,
            replaced: CancellationToken::new(),
        };
        (reg, rx)
    }

    fn out() -> Outbound {
        Outbound {
            bytes: Bytes::from_static(b"x"),
            kind: "transfer",
            received: None,
        }
    }

    #[test]
    fn room_limit_is_enforced() {
        let registry = Local::new(2);
        let room = RoomName::default();
        let keys: Vec<_> = (0..3u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let mut rxs = Vec::new();
        for (i, key) in keys.iter().enumerate().take(2) {
            let (r, rx) = reg(&room, key, i as u64);
            registry.register(r).unwrap();
            rxs.push(rx);
        }
        let (r, _rx) = reg(&room, &keys[2], 9);
        assert_eq!(registry.register(r), Err(ErrorCode::ROOM_FULL));
        // Another room is independent.
        let (r, _rx2) = reg(&"other".parse().unwrap(), &keys[2], 9);
        registry.register(r).unwrap();
        assert_eq!(registry.counts(), (2, 3));
    }

    #[test]
    fn same_key_replaces_other_key_is_refused() {
        let registry = Local::new(10);
        let room = RoomName::default();
        let key = Keypair::from_seed([1; 32]);
        let (first, _rx1) = reg(&room, &key, 1);
        let first_token = first.replaced.clone();
        registry.register(first).unwrap();

        // A different key claiming the same id.
        let (mut forged, _rx) = reg(&room, &Keypair::from_seed([2; 32]), 2);
        forged.node_id = key.node_id();
        assert_eq!(registry.register(forged), Err(ErrorCode::NODE_ID_IN_USE));
        assert!(!first_token.is_cancelled());

        let (second, mut rx2) = reg(&room, &key, 3);
        registry.register(second).unwrap();
        assert!(first_token.is_cancelled());
        // The old session's cleanup must not remove the new one.
        assert!(!registry.unregister(&room, &key.node_id(), 1));
        assert_eq!(
            registry.deliver(&room, &key.node_id(), out()),
            Delivery::Queued
        );
        assert!(rx2.try_recv().is_ok());
        assert!(registry.unregister(&room, &key.node_id(), 3));
        assert_eq!(registry.counts(), (0, 0));
    }

    #[test]
    fn full_queue_is_busy_not_blocking() {
        let registry = Local::new(10);
        let room = RoomName::default();
        let key = Keypair::from_seed([1; 32]);
        let (r, _rx) = reg(&room, &key, 1);
        registry.register(r).unwrap();
        assert_eq!(
            registry.deliver(&room, &key.node_id(), out()),
            Delivery::Queued
        );
        assert_eq!(
            registry.deliver(&room, &key.node_id(), out()),
            Delivery::Queued
        );
        assert_eq!(
            registry.deliver(&room, &key.node_id(), out()),
            Delivery::Busy
        );
        let stranger = Keypair::from_seed([5; 32]).node_id();
        assert_eq!(
            registry.deliver(&room, &stranger, out()),
            Delivery::UnknownPeer
        );
    }

    #[test]
    fn samples_are_bounded_distinct_and_exclude_the_asker() {
        let registry = Local::new(100);
        let room = RoomName::default();
        let keys: Vec<_> = (0..20u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let _rxs: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let (r, rx) = reg(&room, k, i as u64);
                registry.register(r).unwrap();
                rx
            })
            .collect();
        let me = keys[0].node_id();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let s = registry.sample(&room, &me, 5);
            assert_eq!(s.len(), 5);
            assert!(!s.contains(&me));
            let distinct: std::collections::HashSet<_> = s.iter().collect();
            assert_eq!(distinct.len(), 5);
            seen.extend(s);
        }
        // Every other peer shows up eventually: the sample is not stuck on a prefix.
        assert_eq!(seen.len(), 19);
        assert_eq!(registry.sample(&room, &me, 100).len(), 19);

        // Removing from the middle keeps the index consistent.
        for (i, k) in keys.iter().enumerate().skip(1).step_by(2) {
            assert!(registry.unregister(&room, &k.node_id(), i as u64));
        }
        let rest = registry.sample(&room, &me, 100);
        assert_eq!(rest.len(), 9);
        assert!(
            rest.iter()
                .all(|id| keys.iter().step_by(2).any(|k| k.node_id() == *id))
        );
    }
}

//! The keys a node holds for others: the verified public keys of the peers it heard of
//! (from signed records, offers, floods, lookups, sealed payloads), the per-pair keys
//! derived from them (one X25519 and two HKDF per pair, then cached: a sealed unicast costs
//! one AEAD), the sequence of its own sealed payloads, and a replay window per origin.
//! Everything bounded (docs/protocol.md §9.6).

use std::collections::BTreeSet;
use std::time::Duration;

use mesh_proto::identity::{Keypair, PublicKey};
use mesh_proto::{NodeId, NodeRecord, PairKey, RoomName, Sealed};
use web_time::Instant;

use crate::cache::ExpiringMap;

/// Sealed payloads from one origin remembered, to refuse a replay: a payload whose `seq`
/// is below all of these is refused as too old.
pub(crate) const WINDOW: usize = 256;

/// Why a sealed payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The origin's key is not a usable X25519 point.
    BadKey,
    /// It does not open: altered, or not sealed by its origin for us in our room.
    BadSeal,
    /// Already received (or older than the window).
    Replayed,
    /// From an earlier run of the origin than one already heard from.
    OldEpoch,
}

/// The two keys of one pair, derived once.
#[derive(Debug)]
struct Pair {
    send: PairKey,
    recv: PairKey,
}

/// What one origin sent us lately: its run (`epoch`), the highest `seq`s received in it,
/// and the floor below which every `seq` is refused.
#[derive(Debug, Default)]
struct Window {
    epoch: u64,
    seen: BTreeSet<u64>,
    floor: u64,
}

impl Window {
    /// Whether `(epoch, seq)` is new; if so it is remembered.
    fn accept(&mut self, epoch: u64, seq: u64) -> Result<(), Refused> {
        if epoch < self.epoch {
            return Err(Refused::OldEpoch);
        }
        if epoch > self.epoch {
            // The origin started again (epochs grow from run to run).
            *self = Window {
                epoch,
                ..Window::default()
            };
        }
        if seq < self.floor || !self.seen.insert(seq) {
            return Err(Refused::Replayed);
        }
        if self.seen.len() > WINDOW
            && let Some(lowest) = self.seen.pop_first()
        {
            self.floor = lowest + 1;
        }
        Ok(())
    }
}

/// The keys of one node.
#[derive(Debug)]
pub(crate) struct Book {
    room: RoomName,
    id: NodeId,
    known: ExpiringMap<NodeId, PublicKey>,
    /// Verified records: the peers this node can tell others of.
    records: ExpiringMap<NodeId, NodeRecord>,
    /// Keys the node itself proved lately (it signed or sealed something that came here,
    /// or it is a neighbour): worth a session. A record someone passed on is not: anyone
    /// can make records of nodes nobody runs.
    confirmed: ExpiringMap<NodeId, ()>,
    pairs: ExpiringMap<NodeId, Pair>,
    windows: ExpiringMap<NodeId, Window>,
    epoch: u64,
    next_seq: u64,
}

impl Book {
    /// A book for `own`'s node in `room`; its sealed payloads carry `epoch`, which must
    /// grow from one run of the node to the next (the driver passes the wall-clock time).
    pub fn new(own: &Keypair, room: RoomName, epoch: u64, capacity: usize, ttl: Duration) -> Self {
        Self {
            room,
            id: own.node_id(),
            known: ExpiringMap::new(capacity, ttl),
            records: ExpiringMap::new(capacity, ttl),
            confirmed: ExpiringMap::new(capacity, ttl),
            pairs: ExpiringMap::new(capacity / 4, ttl),
            windows: ExpiringMap::new(capacity / 4, ttl),
            epoch,
            next_seq: 0,
        }
    }

    /// The room every key of this book is for.
    pub fn room(&self) -> &RoomName {
        &self.room
    }

    /// Remembers `key` as `id`'s, proved by `id` itself (it signed or sealed what came).
    /// The caller checked that the key derives `id`.
    pub fn learn(&mut self, id: NodeId, key: PublicKey, now: Instant) {
        if id != self.id {
            self.known.insert(id, key, now);
            self.confirmed.insert(id, (), now);
        }
    }

    /// Remembers `key` as `id`'s without `id` having proved anything (it derives `id`, so
    /// it is the right key; whether a node runs it is another matter).
    pub fn learn_unconfirmed(&mut self, id: NodeId, key: PublicKey, now: Instant) {
        if id != self.id {
            self.known.insert(id, key, now);
        }
    }

    /// `id` proved its key another way (it is a neighbour: its link is authenticated).
    pub fn confirm(&mut self, id: NodeId, now: Instant) {
        if self.known.contains(&id, now) {
            self.confirmed.insert(id, (), now);
        }
    }

    /// Whether `id`'s key is known and `id` proved it lately: a session to it may start.
    pub fn confirmed(&self, id: &NodeId, now: Instant) -> bool {
        self.confirmed.contains(id, now) && self.known.contains(id, now)
    }

    /// Checks `record` for this book's room (unless the same record was checked before)
    /// and keeps it: its id, or `None` if it does not verify.
    pub fn learn_record(&mut self, record: &NodeRecord, now: Instant) -> Option<NodeId> {
        let id = record.id();
        if self.records.get(&id, now) != Some(record) {
            record.verify(&self.room).ok()?;
        }
        if id != self.id {
            self.records.insert(id, *record, now);
            self.known.insert(id, record.key, now);
        }
        Some(id)
    }

    /// The verified record of `id`, if kept.
    pub fn record_of(&self, id: &NodeId, now: Instant) -> Option<NodeRecord> {
        self.records.get(id, now).copied()
    }

    /// Whether a verified record of `id` is kept.
    pub fn has_record(&self, id: &NodeId, now: Instant) -> bool {
        self.records.contains(id, now)
    }

    /// Whether `id`'s key is known, as `key` (a record already verified need not be again).
    pub fn knows_as(&self, id: &NodeId, key: &PublicKey, now: Instant) -> bool {
        self.known.get(id, now) == Some(key)
    }

    /// Whether `id`'s key is known.
    pub fn knows(&self, id: &NodeId, now: Instant) -> bool {
        self.known.contains(id, now)
    }

    /// `id`'s key, if known.
    pub fn key_of(&self, id: &NodeId, now: Instant) -> Option<PublicKey> {
        self.known.get(id, now).copied()
    }

    /// The pair keys with `peer`, whose key is `key`: derived on first use.
    fn pair(
        &mut self,
        own: &Keypair,
        peer: NodeId,
        key: &PublicKey,
        now: Instant,
    ) -> Result<&Pair, Refused> {
        if !self.pairs.contains(&peer, now) {
            let (send, recv) =
                PairKey::derive_both(own, key, &peer, &self.room).map_err(|_| Refused::BadKey)?;
            self.pairs.insert(peer, Pair { send, recv }, now);
        }
        self.pairs.get(&peer, now).ok_or(Refused::BadKey)
    }

    /// Seals `plaintext` (an encoded payload) for `to`, whose key must be known: `None`
    /// if it is not (or is unusable).
    pub fn seal(
        &mut self,
        own: &Keypair,
        to: NodeId,
        plaintext: &[u8],
        now: Instant,
    ) -> Option<Sealed> {
        let key = self.key_of(&to, now)?;
        let (epoch, seq) = (self.epoch, self.next_seq);
        let ciphertext = self
            .pair(own, to, &key, now)
            .ok()?
            .send
            .seal(epoch, seq, plaintext);
        // One counter for every destination: a pair never sees a nonce twice, even when
        // its entry was evicted and comes back.
        self.next_seq += 1;
        Some(Sealed {
            key: own.public(),
            epoch,
            seq,
            ciphertext,
        })
    }

    /// Opens a sealed payload for us: its origin, the inner bytes, and whether it is new
    /// (`false`: a replay, or from an earlier run of its origin: not to be taken again, but
    /// a reliable message's acknowledgement may have been lost). The origin's key is
    /// learned once the payload opens (it proved it holds it).
    pub fn open(
        &mut self,
        own: &Keypair,
        sealed: &Sealed,
        now: Instant,
    ) -> Result<(NodeId, Vec<u8>, bool), Refused> {
        let origin = sealed.origin();
        if origin == self.id {
            return Err(Refused::BadSeal);
        }
        let plaintext = self
            .pair(own, origin, &sealed.key, now)?
            .recv
            .open(sealed.epoch, sealed.seq, &sealed.ciphertext)
            .map_err(|_| Refused::BadSeal);
        let plaintext = match plaintext {
            Ok(p) => p,
            Err(e) => {
                // A pair derived from a key that proved nothing is not kept.
                if !self.knows_as(&origin, &sealed.key, now) {
                    self.pairs.remove(&origin);
                }
                return Err(e);
            }
        };
        if !self.windows.contains(&origin, now) {
            self.windows.insert(origin, Window::default(), now);
        }
        let window = self
            .windows
            .get_mut(&origin, now)
            .ok_or(Refused::Replayed)?;
        let fresh = window.accept(sealed.epoch, sealed.seq).is_ok();
        self.learn(origin, sealed.key, now);
        Ok((origin, plaintext, fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(key: &Keypair, epoch: u64) -> Book {
        Book::new(
            key,
            "lobby".parse().unwrap(),
            epoch,
            64,
            Duration::from_secs(600),
        )
    }

    #[test]
    fn sealed_for_a_peer_opens_there_once() {
        let now = Instant::now();
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let (mut ka, mut kb) = (book(&a, 1), book(&b, 1));
        assert!(
            ka.seal(&a, b.node_id(), b"hi", now).is_none(),
            "key unknown"
        );
        ka.learn(b.node_id(), b.public(), now);
        let sealed = ka.seal(&a, b.node_id(), b"hi", now).unwrap();
        assert_eq!(
            kb.open(&b, &sealed, now).unwrap(),
            (a.node_id(), b"hi".to_vec(), true)
        );
        assert!(!kb.open(&b, &sealed, now).unwrap().2, "a replay is not new");
        // b learned a's key from the payload, and can answer.
        assert!(kb.knows_as(&a.node_id(), &a.public(), now));
        let back = kb.seal(&b, a.node_id(), b"ho", now).unwrap();
        assert_eq!(ka.open(&a, &back, now).unwrap().1, b"ho");
        // A third node cannot open it, nor pass it off as its own.
        let c = Keypair::from_seed([3; 32]);
        let mut kc = book(&c, 1);
        assert_eq!(kc.open(&c, &sealed, now), Err(Refused::BadSeal));
        let mut forged = sealed.clone();
        forged.key = c.public();
        assert_eq!(kb.open(&b, &forged, now), Err(Refused::BadSeal));
    }

    #[test]
    fn the_window_refuses_replays_and_old_runs_but_takes_reordering() {
        let mut w = Window::default();
        w.accept(5, 3).unwrap();
        w.accept(5, 1).unwrap();
        assert_eq!(w.accept(5, 1), Err(Refused::Replayed));
        for seq in 4..(4 + WINDOW as u64) {
            w.accept(5, seq).unwrap();
        }
        // 1 fell below the floor; 2 was never seen but is now too old.
        assert_eq!(w.accept(5, 2), Err(Refused::Replayed));
        assert_eq!(w.accept(4, 10_000), Err(Refused::OldEpoch));
        // A new run starts a new window.
        w.accept(6, 0).unwrap();
        assert_eq!(w.accept(5, 10_000), Err(Refused::OldEpoch));
    }

    #[test]
    fn another_room_does_not_open() {
        let now = Instant::now();
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let mut ka = book(&a, 1);
        let mut kb = Book::new(
            &b,
            "other".parse().unwrap(),
            1,
            64,
            Duration::from_secs(600),
        );
        ka.learn(b.node_id(), b.public(), now);
        let sealed = ka.seal(&a, b.node_id(), b"hi", now).unwrap();
        assert_eq!(kb.open(&b, &sealed, now), Err(Refused::BadSeal));
    }
}

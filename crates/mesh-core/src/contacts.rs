//! The contact table: the peers a node knows of, linked or not, in Kademlia k-buckets.
//!
//! Bucket `b` holds peers whose id shares exactly `b` leading bits with ours (bucket 0 is
//! the farthest half of the id space, each next one half as large). Each bucket keeps at
//! most `bucket_size` contacts, least recently heard of first; a full bucket makes room by
//! forgetting its least recently heard-of contact, and a contact not heard of for `ttl`
//! expires. So the table is bounded (at most `128 × bucket_size` contacts, in practice
//! about `log2(N) × bucket_size` in a mesh of `N` nodes) and fills from every source of
//! ids alike: the server's samples, neighbour exchange, lookups, and the origins of
//! routed traffic.

use std::collections::VecDeque;
use std::time::Duration;

use web_time::Instant;

use mesh_proto::{Distance, NodeId};

/// Buckets of a 128-bit id space (a shared prefix of 128 bits is our own id: not stored).
const BUCKETS: usize = 128;

/// The distance bucket of `peer` as seen from `me`: the length of the prefix they share
/// (0: they differ in the first bit, the farthest half of the id space).
pub(crate) fn bucket(me: &NodeId, peer: &NodeId) -> u32 {
    me.distance(peer).leading_zeros()
}

/// A set of distance buckets (0..128), one bit each: the node's views of which buckets its
/// links, neighbours' neighbours and contacts are in are built on every tick that looks
/// for a better neighbour, so they must cost no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BucketSet(u128);

impl BucketSet {
    /// Adds bucket `b` (ignored beyond the 128 buckets).
    pub fn insert(&mut self, b: u32) {
        if b < BUCKETS as u32 {
            self.0 |= 1u128 << b;
        }
    }

    pub fn contains(&self, b: u32) -> bool {
        b < BUCKETS as u32 && self.0 & (1u128 << b) != 0
    }

    /// Removes bucket `b`.
    pub fn remove(&mut self, b: u32) {
        if b < BUCKETS as u32 {
            self.0 &= !(1u128 << b);
        }
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl FromIterator<u32> for BucketSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        let mut set = Self::default();
        iter.into_iter().for_each(|b| set.insert(b));
        set
    }
}

/// Known peers by distance bucket, bounded per bucket.
#[derive(Debug)]
pub(crate) struct ContactTable {
    me: NodeId,
    /// Bucket → (peer, last heard of, last seen alive), oldest first; only as many buckets
    /// as the deepest one ever used (about `log2(N)` + a few in a mesh of `N` nodes, not
    /// 128), so that a pass over the table touches only buckets that can hold someone.
    buckets: Vec<VecDeque<(NodeId, Instant, Option<Instant>)>>,
    bucket_size: usize,
    ttl: Duration,
}

impl ContactTable {
    pub fn new(me: NodeId, bucket_size: usize, ttl: Duration) -> Self {
        Self {
            me,
            buckets: Vec::new(),
            bucket_size: bucket_size.max(1),
            ttl,
        }
    }

    fn bucket_of(&self, peer: &NodeId) -> Option<usize> {
        let b = bucket(&self.me, peer) as usize;
        (b < BUCKETS).then_some(b)
    }

    fn live(&self, at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(at) < self.ttl
    }

    /// Records that `peer` exists, heard of at `now`. Returns whether it is new to the table
    /// (it was not there, or had expired). Our own id is never stored.
    pub fn insert(&mut self, peer: NodeId, now: Instant) -> bool {
        self.record(peer, now, false)
    }

    /// Records that `peer` was seen alive at `now`: first hand (its own signed or sealed
    /// traffic, a neighbour's announcement that it is linked to it, the server's sample,
    /// its offer), not a record passed on. A contact already in the table keeps its place
    /// (when it was last heard of); a new one is inserted. Returns whether it is new.
    pub fn seen(&mut self, peer: NodeId, now: Instant) -> bool {
        let known = self
            .bucket_of(&peer)
            .and_then(|b| self.buckets.get_mut(b))
            .and_then(|bucket| bucket.iter_mut().find(|(p, _, _)| *p == peer));
        match known {
            Some(entry) if now.saturating_duration_since(entry.1) < self.ttl => {
                entry.2 = Some(now);
                false
            }
            _ => self.record(peer, now, true),
        }
    }

    fn record(&mut self, peer: NodeId, now: Instant, alive: bool) -> bool {
        let Some(b) = self.bucket_of(&peer) else {
            return false;
        };
        if self.buckets.len() <= b {
            self.buckets.resize_with(b + 1, VecDeque::new);
        }
        let (size, ttl) = (self.bucket_size, self.ttl);
        let entries = &mut self.buckets[b];
        while entries
            .front()
            .is_some_and(|(_, at, _)| now.saturating_duration_since(*at) >= ttl)
        {
            entries.pop_front();
        }
        let (new, seen) = match entries.iter().position(|(p, _, _)| *p == peer) {
            Some(i) => (false, entries.remove(i).and_then(|(_, _, seen)| seen)),
            None => (true, None),
        };
        if entries.len() >= size {
            entries.pop_front();
        }
        entries.push_back((peer, now, if alive { Some(now) } else { seen }));
        new
    }

    /// Whether `peer` is in the table and has not expired.
    #[cfg(test)]
    pub fn contains(&self, peer: &NodeId, now: Instant) -> bool {
        self.bucket_of(peer)
            .and_then(|b| self.buckets.get(b))
            .is_some_and(|bucket| {
                bucket
                    .iter()
                    .any(|(p, at, _)| p == peer && self.live(*at, now))
            })
    }

    /// Forgets `peer` (a session with it failed, or the server says it is gone).
    pub fn remove(&mut self, peer: &NodeId) {
        if let Some(bucket) = self.bucket_of(peer).and_then(|b| self.buckets.get_mut(b)) {
            bucket.retain(|(p, _, _)| p != peer);
        }
    }

    /// Every live contact, bucket 0 first.
    pub fn iter(&self, now: Instant) -> impl Iterator<Item = &NodeId> {
        self.buckets
            .iter()
            .flatten()
            .filter(move |e| self.wanted(e, now, None))
            .map(|(p, _, _)| p)
    }

    /// Whether `entry` is live at `now` and, with `seen_since`, was seen alive since.
    fn wanted(
        &self,
        (_, at, seen): &(NodeId, Instant, Option<Instant>),
        now: Instant,
        seen_since: Option<Instant>,
    ) -> bool {
        self.live(*at, now) && seen_since.is_none_or(|since| seen.is_some_and(|s| s >= since))
    }

    /// Whether `peer` is a live contact seen alive first hand less than `within` ago.
    pub fn seen_within(&self, peer: &NodeId, within: Duration, now: Instant) -> bool {
        self.bucket_of(peer)
            .and_then(|b| self.buckets.get(b))
            .and_then(|bucket| bucket.iter().find(|(p, _, _)| p == peer))
            .is_some_and(|(_, at, seen)| {
                self.live(*at, now)
                    && seen.is_some_and(|s| now.saturating_duration_since(s) < within)
            })
    }

    /// How many buckets there are to look at: no contact was ever in a bucket beyond.
    pub fn depth(&self) -> u32 {
        self.buckets.len() as u32
    }

    /// The live contacts in bucket `b`; with `seen_since`, only those seen alive since.
    pub fn in_bucket(
        &self,
        b: u32,
        now: Instant,
        seen_since: Option<Instant>,
    ) -> impl Iterator<Item = &NodeId> {
        self.buckets
            .get(b as usize)
            .into_iter()
            .flatten()
            .filter(move |e| self.wanted(e, now, seen_since))
            .map(|(p, _, _)| p)
    }

    /// The buckets that hold a live contact.
    pub fn non_empty_buckets(&self, now: Instant) -> BucketSet {
        (0..self.buckets.len())
            .filter(|b| {
                self.buckets[*b]
                    .iter()
                    .any(|(_, at, _)| self.live(*at, now))
            })
            .map(|b| b as u32)
            .collect()
    }

    /// How many contacts the table holds, expired ones included until they are dropped.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(VecDeque::len).sum()
    }

    /// The most contacts the table can hold.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        BUCKETS * self.bucket_size
    }

    /// The largest bucket.
    #[cfg(test)]
    pub fn largest_bucket(&self) -> usize {
        self.buckets.iter().map(VecDeque::len).max().unwrap_or(0)
    }

    /// Up to `max` live contacts closest to `target` for which `keep` holds, closest first.
    ///
    /// Lookups and `FindNodes` ask this of every node on their way, so it reads only the
    /// buckets it needs. If `target` is in our bucket `t`, a contact in bucket `t` shares at
    /// least `t + 1` leading bits with it, one in a deeper bucket exactly `t`, and one in a
    /// bucket `b < t` exactly `b`: so bucket `t`, then the deeper buckets together, then
    /// buckets `t - 1` down to 0 come in order of distance, and sorting within each group
    /// gives the whole order.
    pub fn closest(
        &self,
        target: &NodeId,
        max: usize,
        now: Instant,
        keep: impl Fn(&NodeId) -> bool,
    ) -> Vec<NodeId> {
        let depth = self.buckets.len();
        let t = (bucket(&self.me, target) as usize).min(depth);
        let groups = std::iter::once(t..(t + 1).min(depth))
            .chain(std::iter::once((t + 1).min(depth)..depth))
            .chain((0..t).rev().map(|b| b..b + 1));
        let mut out: Vec<(Distance, NodeId)> = Vec::with_capacity(max);
        for group in groups {
            if out.len() >= max {
                break;
            }
            let from = out.len();
            out.extend(
                self.buckets[group]
                    .iter()
                    .flatten()
                    .filter(|(p, at, _)| self.live(*at, now) && keep(p))
                    .map(|(p, _, _)| (p.distance(target), *p)),
            );
            out[from..].sort_unstable();
        }
        out.truncate(max);
        out.into_iter().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u128) -> NodeId {
        NodeId::from_bytes(n.to_be_bytes())
    }

    #[test]
    fn a_full_bucket_forgets_its_least_recently_heard_of_contact() {
        let now = Instant::now();
        let me = id(0);
        let mut table = ContactTable::new(me, 2, Duration::from_secs(60));
        // Three peers in bucket 0 (top bit set).
        let (a, b, c) = (id(1 << 127), id((1 << 127) | 1), id((1 << 127) | 2));
        assert!(table.insert(a, now));
        assert!(table.insert(b, now));
        assert!(!table.insert(a, now)); // a heard of again: b is now the oldest
        assert!(table.insert(c, now));
        assert!(table.contains(&a, now));
        assert!(!table.contains(&b, now));
        assert!(table.contains(&c, now));
        assert!(!table.insert(me, now));
        assert_eq!(table.len(), 2);
    }

    /// Seen alive first hand: marked, without moving the contact in its bucket's order
    /// (which is when it was last heard of); hearsay after that keeps the mark; a bucket
    /// asked for peers seen since a moment gives only those.
    #[test]
    fn a_contact_seen_alive_is_marked_and_hearsay_does_not_unmark_it() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let mut table = ContactTable::new(id(0), 2, Duration::from_secs(60));
        let (a, b, c) = (id(1 << 127), id((1 << 127) | 1), id((1 << 127) | 2));
        table.insert(a, now);
        table.insert(b, now);
        assert!(!table.seen(a, later), "known already");
        // a kept its place: still the least recently heard of, so the one c evicts.
        table.insert(c, later);
        assert!(!table.contains(&a, later) && table.contains(&b, later));
        assert!(table.seen(a, later), "new again");
        table.insert(a, later + Duration::from_secs(1));
        let seen_since =
            |t| -> Vec<NodeId> { table.in_bucket(0, later, Some(t)).copied().collect() };
        assert_eq!(seen_since(later), [a]);
        assert_eq!(
            seen_since(later + Duration::from_secs(1)),
            Vec::<NodeId>::new()
        );
        assert_eq!(table.in_bucket(0, later, None).count(), 2);
    }

    #[test]
    fn contacts_expire() {
        let now = Instant::now();
        let mut table = ContactTable::new(id(0), 4, Duration::from_secs(1));
        table.insert(id(5), now);
        assert!(table.contains(&id(5), now + Duration::from_millis(999)));
        assert!(!table.contains(&id(5), now + Duration::from_secs(1)));
        assert_eq!(table.iter(now + Duration::from_secs(1)).count(), 0);
        // Heard of again after expiring: new again.
        assert!(table.insert(id(5), now + Duration::from_secs(2)));
    }

    proptest! {
        /// Whatever is inserted, no bucket exceeds its size, our own id is never stored,
        /// and `closest` agrees with sorting every live contact.
        #[test]
        fn the_table_stays_within_its_bounds(
            me in any::<u128>(),
            size in 1usize..6,
            peers in prop::collection::vec((any::<u128>(), 0u8..4, 0u64..3), 0..400),
            target in any::<u128>(),
            target_kind in 0u8..3,
        ) {
            let start = Instant::now();
            let mut table = ContactTable::new(id(me), size, Duration::from_secs(2));
            let mut now = start;
            for (p, shift, dt) in &peers {
                // Ids near ours as well as random ones, so that deep buckets fill too.
                let p = if *shift == 0 { me ^ (p >> (p % 128)) } else { *p };
                now += Duration::from_secs(*dt);
                table.insert(id(p), now);
                prop_assert!(table.largest_bucket() <= size);
                prop_assert!(table.len() <= table.capacity());
                prop_assert!(!table.contains(&id(me), now));
            }
            // Our own id, an id near ours (deep buckets), or any id.
            let target = match target_kind {
                0 => me,
                1 => me ^ (target >> (target % 128)),
                _ => target,
            };
            for max in [1, 5, 40] {
                let mut all: Vec<NodeId> = table.iter(now).copied().collect();
                all.sort_by_key(|p| p.distance(&id(target)));
                all.truncate(max);
                prop_assert_eq!(table.closest(&id(target), max, now, |_| true), all);
            }
            // With a filter, the same as filtering the sorted list.
            let odd = |p: &NodeId| p.as_bytes()[15] % 2 == 1;
            let mut all: Vec<NodeId> = table.iter(now).copied().filter(odd).collect();
            all.sort_by_key(|p| p.distance(&id(target)));
            all.truncate(5);
            prop_assert_eq!(table.closest(&id(target), 5, now, odd), all);
        }
    }
}

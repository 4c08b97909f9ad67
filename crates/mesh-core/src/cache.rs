//! A bounded map whose entries expire: the one structure behind the dedup cache, the
//! replay guard and the route table. Inserting beyond capacity evicts the oldest entry.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use web_time::Instant;

/// A map of at most `capacity` entries, each living `ttl` after its last insertion.
#[derive(Debug)]
pub(crate) struct ExpiringMap<K, V> {
    /// Key → (value, insertion time, insertion number).
    entries: HashMap<K, (V, Instant, u64)>,
    /// Insertions in order: (key, insertion time, insertion number). A record is live only
    /// if its number is still the entry's: a refresh leaves a stale record behind, skipped
    /// on eviction and dropped by compaction. Numbers, not times, tell them apart: many
    /// insertions can share one `Instant` (a virtual clock, a coarse one).
    order: VecDeque<(K, Instant, u64)>,
    next: u64,
    capacity: usize,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone, V> ExpiringMap<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// Inserts or refreshes `key`. Returns the previous live value.
    pub fn insert(&mut self, key: K, value: V, now: Instant) -> Option<V> {
        self.expire(now);
        let n = self.next;
        self.next += 1;
        let old = self
            .entries
            .insert(key.clone(), (value, now, n))
            .map(|(v, _, _)| v);
        self.order.push_back((key, now, n));
        while self.entries.len() > self.capacity {
            self.pop_oldest();
        }
        // Stale records pile up under refreshes: compact when they outnumber the live
        // entries. Each compaction leaves one record per live entry, and the next comes
        // after as many inserts again (and 16), so its cost is amortised. Bounded by the
        // live entries, not the capacity: a node's key book refreshes records on every
        // announcement, and with the bound at twice the capacity (4 096) each of its maps
        // kept a queue of up to 8 208 records whatever it held, 140 of the 195 MB peak of
        // 500 memory nodes (docs/benchmarks.md §14.10). A queue left far larger than its
        // records is shrunk.
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(k, _, n)| entries.get(k).is_some_and(|(_, _, m)| m == n));
            if self.order.capacity() > 4 * (self.order.len() + 16) {
                self.order.shrink_to(2 * self.order.len() + 16);
            }
        }
        old
    }

    /// The live value of `key`.
    pub fn get(&self, key: &K, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(_, at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(v, _, _)| v)
    }

    /// The live value of `key`, to change in place (its age is not refreshed).
    pub fn get_mut(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        let ttl = self.ttl;
        self.entries
            .get_mut(key)
            .filter(|(_, at, _)| now.saturating_duration_since(*at) < ttl)
            .map(|(v, _, _)| v)
    }

    pub fn contains(&self, key: &K, now: Instant) -> bool {
        self.get(key, now).is_some()
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(v, _, _)| v)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops every entry older than the ttl.
    pub fn expire(&mut self, now: Instant) {
        while let Some((_, at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            // Old: its entry goes only if the record is still the entry's (a refreshed
            // entry has a younger record further on, and stays).
            self.pop_record();
        }
    }

    /// Evicts the entry of the oldest record that is still its entry's.
    fn pop_oldest(&mut self) {
        while !self.order.is_empty() && !self.pop_record() {}
    }

    /// Drops the oldest record, and its entry if the record is still the entry's; returns
    /// whether it dropped an entry.
    fn pop_record(&mut self) -> bool {
        let Some((key, _, n)) = self.order.pop_front() else {
            return false;
        };
        let current = self.entries.get(&key).is_some_and(|(_, _, m)| *m == n);
        if current {
            self.entries.remove(&key);
        }
        current
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|k, (v, _, _)| keep(k, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_evicts_the_oldest() {
        let now = Instant::now();
        let mut map = ExpiringMap::new(2, Duration::from_secs(10));
        map.insert(1, "a", now);
        map.insert(2, "b", now);
        map.insert(1, "a2", now + Duration::from_millis(1)); // refresh 1
        map.insert(3, "c", now + Duration::from_millis(2)); // evicts 2, the oldest live
        assert_eq!(map.len(), 2);
        assert!(map.contains(&1, now));
        assert!(!map.contains(&2, now));
        assert!(map.contains(&3, now));
    }

    #[test]
    fn an_old_record_of_a_refreshed_entry_expires_nothing_else() {
        // `a`'s first record is the oldest; once it is past the ttl it must go alone, not
        // take the next live entry (`b`, younger than the ttl) with it.
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut map = ExpiringMap::new(10, s(10));
        map.insert("a", 1, t0);
        map.insert("b", 2, t0 + s(1));
        map.insert("a", 3, t0 + s(2));
        map.expire(t0 + s(10) + Duration::from_millis(500));
        assert!(map.contains(&"a", t0 + s(11)));
        assert!(map.contains(&"b", t0 + s(10) + Duration::from_millis(500)));
        assert_eq!(map.len(), 2);
        map.expire(t0 + s(11));
        assert!(!map.contains(&"b", t0 + s(11)));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn entries_expire() {
        let now = Instant::now();
        let mut map = ExpiringMap::new(10, Duration::from_secs(1));
        map.insert("k", 1, now);
        assert!(map.contains(&"k", now + Duration::from_millis(999)));
        assert!(!map.contains(&"k", now + Duration::from_secs(1)));
        map.expire(now + Duration::from_secs(2));
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn refreshes_at_one_instant_do_not_grow_the_order() {
        // A virtual clock gives many insertions the same time.
        let now = Instant::now();
        let mut map = ExpiringMap::new(4, Duration::from_secs(100));
        for i in 0..10_000u32 {
            map.insert(i % 3, i, now);
        }
        assert_eq!(map.len(), 3);
        assert!(map.order.len() <= 2 * 4 + 16 + 1, "{}", map.order.len());
        assert_eq!(map.get(&0, now), Some(&9999));
    }

    #[test]
    fn the_order_is_bounded_by_the_live_entries_not_the_capacity() {
        let now = Instant::now();
        let mut map = ExpiringMap::new(4096, Duration::from_secs(100));
        for i in 0..100_000u32 {
            map.insert(i % 5, i, now + Duration::from_micros(i.into()));
        }
        assert_eq!(map.len(), 5);
        assert!(map.order.len() <= 2 * 5 + 16 + 1, "{}", map.order.len());
        assert!(
            map.order.capacity() <= 4 * (2 * 5 + 16 + 1),
            "{}",
            map.order.capacity()
        );
        // A burst of distinct keys grows it; once they are removed, refreshes shrink it.
        for i in 0..4096u32 {
            map.insert(1000 + i, i, now);
        }
        for i in 0..4096u32 {
            map.remove(&(1000 + i));
        }
        for i in 0..1000u32 {
            map.insert(i % 5, i, now);
        }
        assert!(map.order.capacity() < 1024, "{}", map.order.capacity());
    }

    #[test]
    fn refreshes_do_not_grow_the_order_without_bound() {
        let now = Instant::now();
        let mut map = ExpiringMap::new(4, Duration::from_secs(100));
        for i in 0..10_000u32 {
            map.insert(i % 3, i, now + Duration::from_micros(i.into()));
        }
        assert_eq!(map.len(), 3);
        assert!(map.order.len() <= 2 * 4 + 16 + 1);
    }

    proptest::proptest! {
        /// Whatever the insertions, refreshes, removals and clock steps: never more than
        /// `capacity` entries, the order record stays within its compaction bound, no
        /// entry outlives its `ttl`, and the entry just inserted is there.
        #[test]
        fn the_map_never_exceeds_its_bounds(
            capacity in proptest::prop_oneof![1usize..16, proptest::strategy::Just(40usize)],
            ttl_ms in 1u64..50,
            ops in proptest::collection::vec((0u8..3, 0u16..40, 0u64..20), 0..400),
        ) {
            let start = Instant::now();
            let ttl = Duration::from_millis(ttl_ms);
            let mut map = ExpiringMap::new(capacity, ttl);
            let mut inserted_at = HashMap::new();
            let mut now = start;
            for (op, key, step_ms) in ops {
                now += Duration::from_millis(step_ms);
                match op {
                    0 | 1 => {
                        map.insert(key, (), now);
                        inserted_at.insert(key, now);
                        proptest::prop_assert!(map.contains(&key, now));
                    }
                    _ => {
                        map.remove(&key);
                        inserted_at.remove(&key);
                    }
                }
                proptest::prop_assert!(map.len() <= capacity);
                // Nothing goes early: with room for every key, a key inserted within the
                // ttl and not removed since is there.
                if capacity >= 40 {
                    for (k, at) in &inserted_at {
                        if now.duration_since(*at) < ttl {
                            proptest::prop_assert!(map.contains(k, now), "{k} went early");
                        }
                    }
                }
                proptest::prop_assert!(map.order.len() <= 2 * capacity + 16 + 1);
                proptest::prop_assert!(map.order.len() <= 2 * map.entries.len() + 16 + 1 || op >= 2);
                for (k, at) in &inserted_at {
                    if now.duration_since(*at) >= ttl {
                        proptest::prop_assert!(!map.contains(k, now), "{k} outlived its ttl");
                    }
                }
            }
        }
    }
}
